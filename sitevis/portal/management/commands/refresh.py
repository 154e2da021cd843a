"""refresh: boxes' last seen, health and interfaces from the collectors' self-metrics."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sitevis.influx import InfluxError
from sitevis.portal.sync.load import refresh
from sitevis.portal.traffic import source
from sitevis.query import QueryError, duration


class Command(BaseCommand):
    help = "Fill boxes' last seen, health and interfaces from InfluxDB"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--window", default="5m", help="sums over this long (5m)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            seen = refresh(source.influx(), duration(options["window"]))
        except (InfluxError, QueryError) as err:
            raise CommandError(str(err)) from None
        self.stdout.write(f"{seen} boxes with data")
