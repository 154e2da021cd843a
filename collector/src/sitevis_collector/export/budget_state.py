"""The series budget's admission state across restarts.

The budget bounds the talker series a box creates a day by admitting at most capacity +
24 x admissions_per_hour keys (export/admission.py). A fresh process starts with a full
bucket, so without this a collector that restarts (an upgrade, a crash loop under
systemd's Restart=) would admit a whole new set each time. `sitevis-collector run` loads
the state at start and saves it after each interval that admitted a key (at most every
interval, at least every SAVE_EVERY) and at exit, as one small JSON file in the spool
directory (the one place the hardened unit may write; the spool leaves it alone).
A missing file is a first start; an unreadable one is one warning and a fresh budget.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from sitevis_collector.export.budget import SeriesBudget
from sitevis_collector.export.spool import BUDGET_STATE

log = logging.getLogger(__name__)

NAME = BUDGET_STATE
VERSION = 1
SAVE_EVERY = 60         # intervals between saves when nothing was admitted (decay, tokens)


class BudgetKeeper:
    def __init__(self, budget: SeriesBudget, spool_dir: str) -> None:
        self.budget = budget
        self.path = Path(spool_dir) / NAME
        self._since_save = 0

    def load(self) -> bool:
        """Restore the saved state; False when there was none to use."""
        try:
            saved = json.loads(self.path.read_text())
            if saved.get("version") != VERSION:
                raise ValueError(f"version {saved.get('version')!r}, not {VERSION}")
            self.budget.restore(saved["budget"], time.time() - float(saved["saved_at"]))
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("series budget state %s not used (%s): starting with a fresh "
                        "budget", self.path, err)
            return False
        log.info("series budget restored from %s: %d talkers, %d services admitted",
                 self.path, len(self.budget.talkers), len(self.budget.services))
        return True

    def after_interval(self) -> None:
        """Save when this interval admitted a key, or every SAVE_EVERY intervals."""
        self._since_save += 1
        last = self.budget.last
        if last.get("talker_admissions") or last.get("service_admissions") or \
                self._since_save >= SAVE_EVERY:
            self.save()

    def save(self) -> bool:
        """Write the state atomically (a crash leaves the old file or the new one)."""
        self._since_save = 0
        body = json.dumps({"version": VERSION, "saved_at": time.time(),
                           "budget": self.budget.state()}, separators=(",", ":"))
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_text(body)
            os.replace(temporary, self.path)
        except OSError as err:
            log.warning("series budget state not saved to %s: %s (a restart would "
                        "start with a fresh budget)", self.path, err.strerror or err)
            return False
        return True
