"""health: evaluate the health rules from InfluxDB and deliver due webhooks, once or in a
loop (what the monitor's unit runs). Beside the evaluations, two threads of their own:
one refreshes the boxes' last seen, health, interfaces and collector version every
overview_refresh_seconds (as `sitevis portal refresh` does), one computes the top lists
and series of the preset ranges ahead of requests (sitevis/portal/traffic/ahead.py). At
a big site they take InfluxDB seconds to minutes, which must not hold up an evaluation."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections

from sitevis.influx import InfluxError
from sitevis.portal.changes import context
from sitevis.portal.health import notify
from sitevis.portal.health.evaluate import evaluate
from sitevis.portal.sync.load import refresh
from sitevis.portal.traffic import ahead, ahead_series, source
from sitevis.query import QueryError, duration

BOX_WINDOW = duration("5m")   # what `sitevis portal refresh` sums by default


def _instant(text: str) -> datetime:
    """Epoch seconds or an ISO time (UTC unless it says otherwise)."""
    try:
        found = (datetime.fromtimestamp(float(text), tz=UTC) if text.replace(".", "").isdigit()
                 else datetime.fromisoformat(text))
    except (ValueError, OverflowError, OSError):
        raise CommandError(f"--at {text!r} is not epoch seconds or an ISO time") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Evaluate health rules from InfluxDB, track issues, deliver webhooks"

    def add_arguments(self, parser: Any) -> None:
        how = parser.add_mutually_exclusive_group(required=True)
        how.add_argument("--once", action="store_true", help="one evaluation, then exit")
        how.add_argument("--loop", action="store_true", help="evaluate every --every seconds")
        parser.add_argument("--every", type=float, default=None,
                            help="seconds between evaluations (health.interval_seconds, 10)")
        parser.add_argument("--at", default=None,
                            help="evaluate as of this time (epoch seconds or ISO; --once)")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.CONFIG.health
        every = cfg.interval_seconds if options["every"] is None else options["every"]
        if every <= 0:
            raise CommandError("--every must be more than 0 seconds")
        if options["at"] and not options["once"]:
            raise CommandError("--at goes with --once")
        at = _instant(options["at"]) if options["at"] else None
        token = context.bind(context.Actor.command("health"))
        try:
            if options["once"]:
                ok = self.run_once(at or datetime.now(UTC), quiet=False)
                # The top lists end now: not for an evaluation in the past.
                if at is None and settings.CONFIG.overview_refresh_seconds > 0:
                    ok = self.refresh_views(quiet=False) and ok
                if not ok:
                    raise CommandError("evaluation failed (above)")
                return
            # SIGTERM (systemd's stop) ends the loop between runs: a run in progress
            # finishes, so no attempt is made without being recorded.
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            # The passes and the boxes' refresh take their own threads: at a big site
            # they take seconds to minutes, and the rules must keep the collector's
            # interval.
            refresh_s = settings.CONFIG.overview_refresh_seconds
            if refresh_s > 0:
                for name, loop in (("tops-ahead", self.tops_loop),
                                   ("boxes-refresh", self.boxes_loop)):
                    threading.Thread(target=loop, args=(stop, refresh_s), name=name,
                                     daemon=True).start()
            while not stop.is_set():
                started = time.monotonic()
                self.run_once(datetime.now(UTC), quiet=True)
                close_old_connections()
                stop.wait(max(0.0, every - (time.monotonic() - started)))
        except KeyboardInterrupt:
            return
        finally:
            context.reset(token)

    def refresh_views(self, quiet: bool) -> bool:
        """Every top list computed ahead and the boxes' observed state refreshed (--once);
        False (one line each) when InfluxDB or the database failed."""
        return self.refresh_tops(quiet, force=True) & self.refresh_boxes(quiet)

    def refresh_tops(self, quiet: bool, *, force: bool = False) -> bool:
        """The passes of ahead.py (top lists) and ahead_series.py (series per box) that
        are due, or all of them with `force`."""
        every = settings.CONFIG.overview_refresh_seconds
        db = source.influx(timeout=ahead.PASS_TIMEOUT_S)
        try:
            tops = ahead.refresh(db, every, force=force)
            charts = ahead_series.refresh(db, every, force=force)
        except (InfluxError, QueryError) as err:
            self.stderr.write(f"health: top lists or series not computed: {err}")
            return False
        if tops and not quiet:
            self.stdout.write(f"health: top lists of {', '.join(ahead.PRESETS)} computed "
                              f"in {sum(c.seconds for c in tops):.1f} s")
        if charts and not quiet:
            self.stdout.write(f"health: series per box of {', '.join(ahead_series.PRESETS)} "
                              f"computed in {sum(c.seconds for c in charts):.1f} s")
        return True

    def tops_loop(self, stop: threading.Event, every_s: float) -> None:
        """Each preset's lists when they are due (ahead.period_s), until `stop`."""
        while not stop.is_set():
            self.refresh_tops(quiet=True)
            stop.wait(every_s)

    def boxes_loop(self, stop: threading.Event, every_s: float) -> None:
        """The boxes' observed state every `every_s`, until `stop`."""
        while not stop.is_set():
            self.refresh_boxes(quiet=True)
            close_old_connections()
            stop.wait(every_s)

    def refresh_boxes(self, quiet: bool) -> bool:
        started = time.monotonic()
        try:
            seen = refresh(source.influx(), BOX_WINDOW)
        except (InfluxError, QueryError, DatabaseError) as err:
            self.stderr.write(f"health: boxes not refreshed: {err}")
            return False
        if not quiet:
            self.stdout.write(f"health: {seen} boxes with data refreshed in "
                              f"{time.monotonic() - started:.2f} s")
        return True

    def run_once(self, now: datetime, quiet: bool) -> bool:
        """Evaluate, then deliver (also when InfluxDB is away: manual resolves queue
        deliveries too). False when a part failed; each failure is one line on stderr.
        quiet: a line only when an issue opened or resolved (the loop's journal)."""
        cfg = settings.CONFIG.health
        ok = True
        started = time.monotonic()
        try:
            summary = evaluate(source.influx(), now, cfg)
            if not quiet or summary.opened or summary.resolved:
                self.stdout.write(f"health: {summary.line()} (evaluated in "
                                  f"{time.monotonic() - started:.2f} s)")
        except (InfluxError, QueryError, DatabaseError) as err:
            self.stderr.write(f"health: evaluation skipped: {err}")
            ok = False
        policy = notify.Policy(cfg.webhook_attempts, cfg.webhook_backoff_seconds,
                               cfg.webhook_timeout_seconds)
        try:
            counts = notify.deliver_due(now, policy)
            pruned = notify.prune(now, cfg.webhook_keep_days)
        except DatabaseError as err:
            self.stderr.write(f"health: deliveries skipped: {err}")
            return False
        if any(counts.values()):
            self.stdout.write("health: webhooks " + ", ".join(
                f"{n} {what}" for what, n in counts.items()))
        if pruned:
            self.stdout.write(f"health: {pruned} ended deliveries older than "
                              f"{cfg.webhook_keep_days} days forgotten")
        return ok
