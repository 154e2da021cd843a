"""Deliver line protocol to InfluxDB's v1 /write API without losing or repeating intervals.

Rules (Telegraf's, made durable):
- 2xx: done.
- 5xx, 429 and connection errors: retried with exponential backoff and jitter. From the
  first failure until the spool is empty again every batch goes to the disk spool, so the
  data survives a restart; the spool is replayed in order before anything newer.
- "400 partial write" (a series limit reached, a field type conflict): InfluxDB wrote
  some points and refused others. Writes are idempotent, so the batch is sent again in
  halves until the refused lines are known (refused.py); the counts of refused `flow`
  lines are added to an accepted address-free row of their interface, direction and
  interval, so flows still add up to the interface totals. Counted, never retried.
- other 4xx: not retried; logged and counted.

Batches are sent one at a time, oldest first, by one background thread, so InfluxDB sees
the intervals in the order they were submitted. Memory is bounded by
`queue_max_bytes`; past it the queue moves to the spool, which is bounded by
`spool.max_bytes` and drops its oldest batches (counted) when full.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import logging
import random
import re
import ssl
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Iterator

from sitevis_collector import __version__
from sitevis_collector.config import InfluxConfig, SpoolConfig
from sitevis_collector.export.lineproto import Point, encode_line
from sitevis_collector.export.refused import RefusedRows, Resolution, find_refused
from sitevis_collector.export.spool import Batch, Spool

log = logging.getLogger(__name__)

OK, RETRY, REJECTED, LOST, PARTIAL = "ok", "retry", "rejected", "lost", "partial"
_DROPPED = re.compile(r"dropped=(\d+)")
_HURRIED_BACKOFF = 0.25  # seconds between tries while a flush waits


def split_batches(lines: Iterable[bytes], max_bytes: int) -> list[tuple[bytes, int]]:
    """Group newline-terminated lines into bodies of at most max_bytes (uncompressed).

    Returns (body, number of points). A single line longer than max_bytes goes alone:
    InfluxDB will judge it, we do not cut a line.
    """
    return list(iter_batches(lines, max_bytes))


def iter_batches(lines: Iterable[bytes], max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """split_batches() one body at a time, consuming `lines` only as far as needed."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > max_bytes:
            yield b"".join(chunk), len(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield b"".join(chunk), len(chunk)


class WriterClosed(RuntimeError):
    pass


class InfluxWriter:
    """Bounded queue + background sender + disk spool for one InfluxDB database.

    The constructor opens the spool (raising spool.SpoolUnusable with a one-line message
    when it cannot) and starts the sender thread.

    The agent loop calls submit() once per interval, flush(timeout) on SIGTERM and
    close(timeout) before exiting; counters() feeds the self-metrics.
    """

    def __init__(self, influx: InfluxConfig, spool: SpoolConfig, *,
                 rng: random.Random | None = None) -> None:
        self._cfg = influx
        self._rng = rng or random.Random()
        self._spool = Spool(spool.dir, spool.max_bytes)
        self._queue: deque[Batch] = deque()
        self._queue_bytes = 0
        self._inflight: Batch | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        # Set by flush(): cuts the sender's backoff short (it may sleep up to retry_max,
        # longer than a flush may wait) so it tries again while the caller waits.
        self._hurry = threading.Event()
        self.last_error = ""  # why the latest failed send failed ("" after a success)
        self._closed = False
        self._failing = False            # a retryable failure since the last success
        self._counters = dict.fromkeys((
            "points_submitted", "points_written", "batches_written",
            "write_errors_4xx", "write_errors_5xx", "write_errors_conn",
            "partial_writes", "points_rejected", "points_dropped", "points_invalid",
            "points_folded", "retries"), 0)
        self._refused_rows = RefusedRows()     # what `other/refused` rows hold so far
        self._resolution: Resolution | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._target = self._build_target()
        self._thread = threading.Thread(target=self._run, name="sitevis-writer", daemon=True)
        self._thread.start()

    # --- public API ----------------------------------------------------------------

    def submit(self, points: Iterable[Point]) -> None:
        """Queue the points of one interval; never blocks on the network.

        Points are encoded one at a time and compressed a batch at a time, so `points`
        may be a generator and only one uncompressed batch is held at once.
        """
        invalid = 0

        def lines() -> Iterator[bytes]:
            nonlocal invalid
            for point in points:
                try:
                    yield encode_line(point)
                except (ValueError, TypeError) as err:
                    invalid += 1
                    log.error("dropping a %s point that cannot be written: %s",
                              point.measurement, err)

        batches = self._compress(lines())
        with self._cond:
            self._counters["points_invalid"] += invalid
        self._enqueue(batches)

    def submit_lines(self, lines: Iterable[bytes]) -> None:
        """Queue already encoded, newline-terminated lines."""
        self._enqueue(self._compress(lines))

    def _compress(self, lines: Iterable[bytes]) -> list[Batch]:
        batches: list[Batch] = []
        for body, points in iter_batches(lines, self._cfg.batch_max_bytes):
            # Level 1: a third of level 6's CPU for ~25 % more bytes (measured on flow lines).
            data = gzip.compress(body, compresslevel=1, mtime=0)
            batches.append(Batch(points=points, size=len(data), data=data))
        return batches

    def _enqueue(self, batches: list[Batch]) -> None:
        with self._cond:
            if self._closed:
                raise WriterClosed("submit() after close()")
            for batch in batches:
                self._counters["points_submitted"] += batch.points
                if self._failing or len(self._spool):
                    self._to_spool(batch)       # server away, or older data waits on disk
                elif self._queue_bytes + batch.size > self._cfg.queue_max_bytes:
                    self._spill()
                    self._to_spool(batch)
                else:
                    self._queue.append(batch)
                    self._queue_bytes += batch.size
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait up to timeout until nothing is left to send; True if so.

        Points InfluxDB rejected (4xx) are done too: they are counted, never resent.

        Whatever is still only in memory afterwards is moved to the spool, so once this
        returns the caller may exit without losing anything submitted.
        """
        deadline = time.monotonic() + timeout
        self._hurry.set()
        try:
            with self._cond:
                while self._pending():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        break
                    self._cond.wait(remaining)
                delivered = not self._pending()
                self._spill()
                return delivered
        finally:
            self._hurry.clear()

    def close(self, timeout: float = 5.0) -> bool:
        """flush(timeout), then stop the sender. Returns whether everything was delivered."""
        delivered = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._stop.set()
            self._hurry.set()
            self._cond.notify_all()
        self._thread.join(self._cfg.timeout + 1)
        if self._conn is not None and not self._thread.is_alive():
            self._conn.close()
        return delivered

    def counters(self) -> dict[str, int]:
        """Cumulative since this writer started, plus gauges of what is waiting."""
        with self._cond:
            out = dict(self._counters)
            out["write_errors"] = (out["write_errors_4xx"] + out["write_errors_5xx"]
                                   + out["write_errors_conn"])
            out["spool_bytes"] = self._spool.bytes
            out["spool_files"] = len(self._spool)
            out["queue_bytes"] = self._queue_bytes
            return out

    # --- queue and spool (callers hold self._cond) -----------------------------------

    def _pending(self) -> bool:
        return bool(self._queue or len(self._spool) or self._inflight)

    def _to_spool(self, batch: Batch) -> None:
        try:
            dropped = self._spool.append(batch)
        except OSError as err:
            self._counters["points_dropped"] += batch.points
            log.error("spool %s: cannot write, dropping %d points: %s",
                      self._spool.dir, batch.points, err)
            return
        for victim in dropped:
            if victim is self._inflight:
                # Being sent right now: its outcome decides whether it counts as dropped.
                victim.dropped = True
                continue
            self._counters["points_dropped"] += victim.points
            log.warning("spool %s is full (%d bytes): dropped the oldest %d points",
                        self._spool.dir, self._spool.max_bytes, victim.points)

    def _spill(self) -> None:
        """Move the whole memory queue (oldest first) behind what is already spooled."""
        while self._queue:
            batch = self._queue.popleft()
            self._queue_bytes -= batch.size
            self._to_spool(batch)

    def _next(self) -> Batch | None:
        return self._spool.head() or (self._queue[0] if self._queue else None)

    def _done(self, batch: Batch) -> None:
        if batch.path is not None:
            self._spool.remove(batch)
        elif self._queue and self._queue[0] is batch:
            self._queue.popleft()
            self._queue_bytes -= batch.size

    # --- sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0     # consecutive retryable failures
        while not self._stop.is_set():
            with self._cond:
                batch = self._next()
                while batch is None and not self._stop.is_set():
                    self._cond.wait()
                    batch = self._next()
                if batch is None:
                    return
                self._inflight = batch
                body = batch.data
            try:
                if body is None:
                    body = self._spool.read(batch)
            except OSError as err:      # vanished with a full spool, or unreadable
                outcome, detail = LOST, f"spool read failed: {err}"
            else:
                outcome, detail = self._post(body)
                if outcome == REJECTED and "partial write" in detail:
                    outcome, detail = self._resolve(body, detail)
            with self._cond:
                self._inflight = None
                attempt = self._settle(batch, outcome, detail, attempt)
                self._cond.notify_all()
            if outcome == RETRY:
                self._sleep(self._backoff(attempt))

    def _sleep(self, seconds: float) -> None:
        """Back off; a flush (or close) cuts it short to _HURRIED_BACKOFF, so the sender
        keeps trying while the caller waits instead of sleeping past its deadline."""
        end = time.monotonic() + seconds
        if self._hurry.wait(seconds) and not self._stop.is_set():
            self._stop.wait(min(max(0.0, end - time.monotonic()), _HURRIED_BACKOFF))

    def _settle(self, batch: Batch, outcome: str, detail: str, attempt: int) -> int:
        """Book one send's outcome (under the lock); returns the next retry attempt."""
        self.last_error = detail if outcome in (RETRY, LOST) else ""
        if outcome == RETRY:
            self._counters["retries"] += 1
            if not self._failing:
                log.warning("InfluxDB %s unavailable (%s); spooling to %s and retrying",
                            self._cfg.url, detail, self._spool.dir)
            self._failing = True
            self._spill()
            if batch.dropped:       # a full spool let go of it mid-flight: not retried
                self._counters["points_dropped"] += batch.points
            return attempt + 1
        if outcome == LOST:
            self._counters["points_dropped"] += batch.points
            if not batch.dropped:
                log.error("dropping %d spooled points: %s", batch.points, detail)
            self._done(batch)
            return attempt
        if outcome == OK:
            self._counters["points_written"] += batch.points
            self._counters["batches_written"] += 1
            if self._failing:
                log.info("InfluxDB %s reachable again", self._cfg.url)
        elif outcome == PARTIAL and self._resolution is not None:
            self._book_partial(batch, self._resolution, detail)
            self._resolution = None
        else:
            self._reject(batch, detail)
        self._failing = False
        self._done(batch)
        return 0

    def _resolve(self, body: bytes, detail: str) -> tuple[str, str]:
        """After a partial write: which lines were refused, and their flow counts written
        again as refused rows (sender thread, outside the lock)."""
        resolution = find_refused(gzip.decompress(body), self._post_plain)
        if resolution is None:      # InfluxDB went away meanwhile: resend it all later
            return RETRY, detail
        rows = self._refused_rows.fold(resolution.refused, resolution.accepted)
        if rows.lines:
            outcome, why = self._post_plain(b"".join(rows.lines))
            if outcome == OK:
                resolution.folded = rows.points
            else:
                log.error("InfluxDB %s refused the refused-row replacements too: %s",
                          self._cfg.url, why)
        self._resolution = resolution
        return PARTIAL, detail

    def _post_plain(self, body: bytes) -> tuple[str, str]:
        return self._post(gzip.compress(body, compresslevel=1, mtime=0), count=False)

    def _book_partial(self, batch: Batch, res: Resolution, detail: str) -> None:
        refused = len(res.refused) + res.unresolved
        lost = refused - res.folded
        self._counters["partial_writes"] += 1
        self._counters["points_written"] += batch.points - refused
        self._counters["points_folded"] += res.folded
        self._counters["points_rejected"] += lost
        self._counters["batches_written"] += 1
        log.error("InfluxDB %s refused %d of %d points (%d folded into other rows, %d "
                  "lost): %s", self._cfg.url, refused, batch.points, res.folded, lost, detail)

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with 'equal jitter' so boxes of a site do not sync up."""
        delay = min(self._cfg.retry_max, self._cfg.retry_initial * 2 ** (attempt - 1))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _reject(self, batch: Batch, detail: str) -> None:
        dropped = batch.points
        if "partial write" in detail:
            self._counters["partial_writes"] += 1
            match = _DROPPED.search(detail)
            if match:
                dropped = min(int(match[1]), batch.points)
                self._counters["points_written"] += batch.points - dropped
        self._counters["points_rejected"] += dropped
        log.error("InfluxDB %s rejected %d of %d points, not retrying: %s",
                  self._cfg.url, dropped, batch.points, detail)

    # --- HTTP ---------------------------------------------------------------------------

    def _build_target(self) -> tuple[str, str, int, str, dict[str, str]]:
        parts = urllib.parse.urlsplit(self._cfg.url)
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        params = {"db": self._cfg.database, "precision": "ns"}
        if self._cfg.retention_policy:
            params["rp"] = self._cfg.retention_policy
        path = f"{parts.path.rstrip('/')}/write?{urllib.parse.urlencode(params)}"
        headers = {"Content-Type": "text/plain; charset=utf-8",
                   "Content-Encoding": "gzip",
                   "User-Agent": f"sitevis-collector/{__version__}"}
        if self._cfg.username is not None:
            token = f"{self._cfg.username}:{self._cfg.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        return scheme, parts.hostname or "", port, path, headers

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            scheme, host, port, _, _ = self._target
            if scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    host, port, timeout=self._cfg.timeout, context=self._tls_context())
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self._cfg.timeout)
        return self._conn

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self._cfg.tls.ca_file)
        if self._cfg.tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _post(self, body: bytes, count: bool = True) -> tuple[str, str]:
        """One request; returns (outcome, detail). Detail never holds credentials.
        count=False: a resend that finds refused lines, whose errors are not new ones."""
        _, _, _, path, headers = self._target
        # A kept-alive connection the server has since closed fails at once: that is not
        # an outage, so one fresh connection is tried before counting an error.
        fresh_tries = 1 if self._conn is not None else 0
        while True:
            try:
                conn = self._connection()
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read(64 * 1024).decode("utf-8", "replace").strip()
                if resp.will_close or not resp.isclosed():
                    self._drop_connection()
                break
            except (OSError, http.client.HTTPException) as err:
                self._drop_connection()
                stale = isinstance(err, ConnectionError | http.client.RemoteDisconnected)
                if fresh_tries and stale:
                    fresh_tries -= 1
                    continue
                with self._cond:
                    self._counters["write_errors_conn"] += 1
                return RETRY, f"{type(err).__name__}: {err}"
            except Exception as err:    # never let the sender thread die: retry instead
                self._drop_connection()
                log.exception("unexpected error writing to InfluxDB %s", self._cfg.url)
                with self._cond:
                    self._counters["write_errors_conn"] += 1
                return RETRY, f"{type(err).__name__}: {err}"
        status = resp.status
        if 200 <= status < 300:
            return OK, ""
        detail = f"HTTP {status}: {text[:500]}"
        with self._cond:
            if status >= 500 or status == 429:     # 429: overloaded, counted with 5xx
                self._counters["write_errors_5xx"] += 1
                return RETRY, detail
            if count:
                self._counters["write_errors_4xx"] += 1
        return REJECTED, detail

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
