"""`sitevis portal runner` (root): runs the rollouts the worker hands over through the
spool of rollouts.yml's `root_runner` (rootrun.py). It never opens the portal's database:
root-owned files beside it would lock the portal out. SIGTERM cancels the running
rollouts, waits for their results, and exits. The spool's `restart` file makes it
re-execute itself (new code, same pid and unit) once its rollouts have ended."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sitevis.portal.config import ConfigError
from sitevis.portal.rollouts import conf
from sitevis.portal.rollouts.rootrun import RootRunner, SpoolError
from sitevis.portal.rollouts.spool import RUNNER_ID_ENV, Spool


class Command(BaseCommand):
    help = "run, as root, the rollouts the worker hands over (rollouts.yml root_runner)"
    requires_system_checks: list[str] = []   # the checks would open the database

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--poll", type=float, default=0.5,
                            help="seconds between looks at the spool (default 0.5)")

    def handle(self, *args: Any, poll: float, **options: Any) -> None:
        if os.geteuid() != 0:
            raise CommandError("the root runner runs as root (it is there to become root "
                               "on this machine for the worker)")
        try:
            cfg = conf.load()
        except ConfigError as err:
            raise CommandError(str(err)) from None
        if cfg.root_runner is None:
            raise CommandError(f"{cfg.path} names no root_runner spool: nothing to run")
        from sitevis.runner import run_playbook

        spool = Spool(cfg.root_runner)
        # ansible-runner's private dir and artifacts: in the spool, root's alone.
        os.environ["SITEVIS_RUNNER_DIR"] = str(spool.ansible)
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        try:
            runner = RootRunner(spool, conf.load, run_playbook)
        except SpoolError as err:
            raise CommandError(str(err)) from None
        stop: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.append(signum))
        os.environ[RUNNER_ID_ENV] = runner.ident   # its plays find their own runner
        self.stdout.write(f"sitevis portal runner: spool {spool.root}, polling every {poll:g}s")
        while not stop:
            if runner.restart_due():
                self.restart(spool)
            for rollout in runner.poll():
                self.stdout.write(f"rollout #{rollout}: taken")
            time.sleep(poll)
        runner.stop()

    def restart(self, spool: Spool) -> None:
        """The same command again in this process: the pid stays (systemd's and the init
        script's), the code and rollouts.yml are read anew."""
        spool.restart.unlink(missing_ok=True)
        self.stdout.write("restarting as asked (no rollout running)")
        self.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)
