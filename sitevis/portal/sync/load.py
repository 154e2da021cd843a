"""Write inventory boxes into the portal's database (through the models, so each write
is in the change log), and observed health from InfluxDB (not: it is observation)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from sitevis.influx import Influx
from sitevis.portal.inventory.models import Box, Interface, Site
from sitevis.portal.sync.inventory import InventoryBox
from sitevis.portal.traffic import health
from sitevis.query import Duration


@transaction.atomic
def load_boxes(boxes: list[InventoryBox]) -> dict[str, int]:
    counts = {"sites created": 0, "boxes created": 0, "boxes updated": 0, "unchanged": 0}
    for found in boxes:
        site, created = Site.objects.get_or_create(name=found.site)
        counts["sites created"] += created
        box = Box.objects.filter(site=site, name=found.name).first()
        if box is None:
            box = Box(site=site, name=found.name)
            counts["boxes created"] += 1
        elif (box.address, tuple(box.groups)) == (found.address, found.groups):
            counts["unchanged"] += 1
            continue
        else:
            counts["boxes updated"] += 1
        box.address, box.groups = found.address, list(found.groups)
        box.full_clean()
        box.save()
    return counts


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def refresh(db: Influx, window: Duration) -> int:
    """Last seen, health, collector version and interfaces of every box from its
    self-metrics; the boxes that had data."""
    seen = 0
    for box in Box.objects.select_related("site"):
        found: dict[str, Any] = health.box_health(db, box.site.name, box.name, window)
        last = _time(found.pop("last_seen_ms"))
        if last is None:
            continue
        seen += 1
        version = health.collector_version(db, box.site.name, box.name)
        Box.objects.filter(pk=box.pk).update(last_seen=last, health=found,
                                             collector_version=(version or "")[:64])
        for name, at in health.interfaces(db, box.site.name, box.name, window).items():
            Interface.objects.update_or_create(box=box, name=name,
                                               defaults={"last_seen": _time(at)})
    return seen
