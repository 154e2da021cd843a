"""`sitevis portal worker`: runs the queued rollouts, one at a time per inventory (each
worker runs one at a time; start several for several inventories at once). SIGTERM
cancels the running rollout and exits; a rollout in the root runner goes on there, and
the next worker follows it."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from sitevis.portal.changes import context
from sitevis.portal.rollouts import work


class Command(BaseCommand):
    help = "run queued rollouts (ansible-runner), one at a time per inventory"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--poll", type=float, default=2.0,
                            help="seconds between looks at the queue (default 2)")
        parser.add_argument("--once", action="store_true",
                            help="run what is queued, then exit")

    def handle(self, *args: Any, poll: float, once: bool, **options: Any) -> None:
        # ansible-runner's artifacts in the portal's state, not in the (read-only) project.
        os.environ.setdefault("SITEVIS_RUNNER_DIR", str(settings.CONFIG.state_dir / "runner"))
        stop: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.append(signum))
        context.bind(context.Actor.command("worker"))
        self.stdout.write(f"sitevis portal worker: polling every {poll:g}s")
        lost, taken_over = work.recover()
        for rollout_id in lost:
            self.stdout.write(f"rollout #{rollout_id}: failed (its worker had stopped)")
        for left in taken_over:   # left to the root runner by a worker that stopped
            self.stdout.write(f"rollout #{left.pk}: following it on in the root runner")
            done = work.execute(left, stopping=lambda: bool(stop), resume=True)
            self.stdout.write(f"rollout #{done.pk}: {done.state}")
        while not stop:
            rollout = work.claim()
            if rollout is not None:
                done = work.execute(rollout, stopping=lambda: bool(stop))
                self.stdout.write(f"rollout #{done.pk}: {done.state}")
                continue
            if once:
                break
            time.sleep(poll)
