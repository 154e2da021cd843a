"""An ordered, byte-bounded, crash-safe directory of request bodies waiting for InfluxDB.

One file per batch, named ``<sequence:016d>-<points>.lp.gz`` and holding exactly the
gzip body that will be POSTed, so replay is a read and a send. Files are written to a
temporary name, fsynced, renamed and the directory fsynced: after a crash a file is either
whole or absent. Order is the sequence number; a new spool object continues after the
highest one it finds.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{16})-(\d+)\.lp\.gz$")
_TMP_SUFFIX = ".tmp"
BUDGET_STATE = "series-budget.json"   # kept here by export/budget_state.py


class SpoolUnusable(Exception):
    """The spool directory cannot be created or read; the message is one line."""


@dataclass(eq=False, slots=True)
class Batch:
    """One request body. In memory (`data`), on disk (`path`), or both while in flight."""

    points: int
    size: int                    # compressed bytes
    data: bytes | None = None
    path: Path | None = None
    dropped: bool = False        # dropped from a full spool while it was being sent


class Spool:
    """Not thread-safe: the writer calls it under its own lock."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.items: deque[Batch] = deque()
        self.bytes = 0
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._next_seq = self._load()
        except OSError as err:
            raise SpoolUnusable(f"spool directory {str(self.dir)!r}: {err.strerror or err}"
                                ) from None

    def _load(self) -> int:
        found: list[tuple[int, Batch]] = []
        for entry in self.dir.iterdir():
            if entry.name.endswith(_TMP_SUFFIX):
                entry.unlink(missing_ok=True)    # a write a crash interrupted
                continue
            if entry.name == BUDGET_STATE:
                continue                         # the series budget's (budget_state.py)
            match = _NAME.match(entry.name)
            if match is None:
                log.warning("spool %s: ignoring unexpected file %s", self.dir, entry.name)
                continue
            size = entry.stat().st_size
            found.append((int(match[1]), Batch(int(match[2]), size, path=entry)))
        found.sort(key=lambda item: item[0])
        for _, batch in found:
            self.items.append(batch)
            self.bytes += batch.size
        return found[-1][0] + 1 if found else 0

    def __len__(self) -> int:
        return len(self.items)

    def head(self) -> Batch | None:
        return self.items[0] if self.items else None

    def append(self, batch: Batch) -> list[Batch]:
        """Store a batch at the end; returns what was dropped (oldest first) to make room.

        A batch larger than the whole spool is itself dropped. Raises OSError when the
        disk refuses the write.
        """
        assert batch.data is not None
        if batch.size > self.max_bytes:
            return [batch]
        dropped: list[Batch] = []
        while self.items and self.bytes + batch.size > self.max_bytes:
            victim = self.items[0]
            self.remove(victim)
            dropped.append(victim)
        seq = self._next_seq
        self._next_seq += 1
        final = self.dir / f"{seq:016d}-{batch.points}.lp.gz"
        tmp = self.dir / f".{seq:016d}{_TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(batch.data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self._fsync_dir()
        batch.path = final
        batch.data = None    # memory stays bounded by the queue, not by the spool
        self.items.append(batch)
        self.bytes += batch.size
        return dropped

    def read(self, batch: Batch) -> bytes:
        assert batch.path is not None
        return batch.path.read_bytes()

    def remove(self, batch: Batch) -> None:
        try:
            self.items.remove(batch)
        except ValueError:
            return
        self.bytes -= batch.size
        if batch.path is not None:
            # A file that survives a crash here is replayed: harmless, points are idempotent.
            batch.path.unlink(missing_ok=True)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
