"""serve: the portal under gunicorn (bind address and workers from the config)."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the portal with gunicorn"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", help="address:port (default: the config's bind)")
        parser.add_argument("--workers", type=int, help="worker processes")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.CONFIG
        argv = [sys.executable, "-m", "gunicorn", "sitevis.portal.wsgi:application",
                "--bind", options["bind"] or cfg.bind,
                "--workers", str(options["workers"] or cfg.workers),
                "--access-logfile", "-", "--error-logfile", "-",
                # Request lines without query strings: they carry no secrets, but a
                # token pasted into a URL by mistake must not land in a log either.
                "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
                "--forwarded-allow-ips", "127.0.0.1"]
        sys.stdout.flush()
        os.execv(sys.executable, argv)
