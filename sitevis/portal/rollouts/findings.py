"""A rollout's outcome per box as health issues (sitevis/portal/health): a failed or
unreachable host opens (or counts again) its box's `rollout_failed` issue; a host that
succeeded in a real (not check-mode) run resolves it. Hosts that are not boxes of the
portal (the monitor, a typo) are left alone."""

from __future__ import annotations

import logging

from django.apps import apps

from sitevis.portal.inventory.models import Box
from sitevis.portal.rollouts.models import Rollout

log = logging.getLogger("sitevis.portal.rollouts")


def _box(host: str, inventory: str) -> Box | None:
    boxes = list(Box.objects.filter(name=host).select_related("site")[:5])
    in_site = [b for b in boxes if b.site.name == inventory]
    found = in_site or boxes
    return found[0] if len(found) == 1 else None


def report(rollout: Rollout) -> None:
    if not apps.is_installed("sitevis.portal.health") or rollout.state == Rollout.State.CANCELLED:
        return
    try:
        _report(rollout)
    except Exception:   # the health app's trouble must not stop the worker or a record
        log.exception("rollout #%s: health issues not updated", rollout.pk)


def _report(rollout: Rollout) -> None:
    from sitevis.portal.health.lifecycle import open_finding, resolve_finding
    from sitevis.portal.health.models import Kind

    for host in rollout.hosts.all():
        box = _box(host.host, rollout.inventory)
        if box is None:
            continue
        if host.status in ("failed", "unreachable"):
            open_finding(box, Kind.ROLLOUT_FAILED,
                         f"rollout #{rollout.pk} ({rollout.playbook}): {host.status} "
                         f"at {host.task or 'its start'}")
        elif not rollout.check_mode:
            resolve_finding(box, Kind.ROLLOUT_FAILED,
                            note=f"rollout #{rollout.pk} ({rollout.playbook}) succeeded")
