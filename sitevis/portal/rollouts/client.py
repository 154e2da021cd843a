"""The record of a command-line rollout in the portal (standard library only: the
controller's `sitevis rollout` imports this without Django).

Configured by two environment variables: SITEVIS_PORTAL_URL (e.g. http://127.0.0.1:8000)
and SITEVIS_PORTAL_TOKEN_FILE (a file holding a write-enabled token of an operator or
admin). Unset URL: nothing is recorded. Any failure is one warning line; the rollout's
own outcome never depends on the portal.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

URL_ENV = "SITEVIS_PORTAL_URL"
TOKEN_ENV = "SITEVIS_PORTAL_TOKEN_FILE"
HOST_FIELDS = ("ok", "changed", "failed", "skipped", "unreachable")


def git_head(project: Path) -> str | None:
    """`git rev-parse HEAD` of the project when it is a checkout."""
    try:
        found = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None


def inventory_name(path: str) -> str:
    """inventory/lab → lab; inventory/lab/hosts.yml → lab; far.ini → far."""
    found = Path(path)
    if found.is_dir():
        return found.name
    return found.parent.name if found.stem in ("hosts", "inventory") else found.stem


def record(run: dict[str, Any], result: Any, started: datetime, ended: datetime,
           commit: str) -> str | None:
    """POST a finished run to /api/rollouts/record/. The warning to print, or None."""
    url = os.environ.get(URL_ENV, "").rstrip("/")
    if not url:
        return None
    token_file = os.environ.get(TOKEN_ENV, "")
    try:
        token = Path(token_file).read_text().strip()
    except OSError as err:
        return f"not recorded in the portal: {TOKEN_ENV} {token_file!r}: {err.strerror}"
    body = {
        **run, "inventory": inventory_name(result.inventory)[:100], "commit": commit[:64],
        "outcome": ("cancelled" if result.status == "canceled"
                    else "succeeded" if result.succeeded else "failed"),
        "rc": result.rc, "started": started.isoformat(), "ended": ended.isoformat(),
        "hosts": {name: {**{k: getattr(h, k) for k in HOST_FIELDS}, "status": h.status}
                  for name, h in result.hosts.items() if name != "(none)"},
    }
    req = urllib.request.Request(
        f"{url}/api/rollouts/record/", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return None if answer.status == 201 else f"portal answered {answer.status}"
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace").strip()[:200]
        return f"not recorded in the portal at {url}: {err.code} {detail}"
    except (urllib.error.URLError, OSError) as err:
        return f"not recorded in the portal at {url}: {getattr(err, 'reason', err)}"
