"""Launching and cancelling rollouts (API, pages and recorded CLI runs share these), each
in the change log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sitevis.portal.changes import context, record
from sitevis.portal.config import ConfigError
from sitevis.portal.rollouts import client, conf, findings
from sitevis.portal.rollouts.models import Rollout


class NotLaunchable(Exception):
    """A launch this portal cannot run (answered 409 with this text)."""


def project_commit(project: Path | None) -> str:
    """git HEAD of the project when it is a checkout, else the sitevis version."""
    head = client.git_head(project) if project is not None else None
    return head or f"sitevis {settings.SITEVIS_VERSION}"


def log_change(action: str, rollout: Rollout, before: dict | None) -> None:
    # The worker's own state updates are not changes by anyone: only launches and
    # cancels are written, by whoever is acting (context).
    record._write(action, rollout, before, record.snapshot(rollout))


def waiting_for(rollout: Rollout) -> Rollout | None:
    """The active rollout of the same inventory that this one waits behind."""
    return (Rollout.objects.filter(inventory=rollout.inventory, state__in=Rollout.ACTIVE,
                                   created__lte=rollout.created)
            .exclude(pk=rollout.pk).order_by("created", "id").first())


def launch(*, playbook: str, inventory: str, limit: str, tags: str, check: bool,
           source: str) -> Rollout:
    """A queued rollout for the worker. Refused when this portal has no such inventory."""
    try:
        cfg = conf.load()
    except ConfigError as err:
        raise NotLaunchable(str(err)) from None
    if cfg.project is None:
        raise NotLaunchable(f"rollouts are not configured on this portal ({cfg.path} "
                            "names no project)")
    if cfg.inventory(inventory) is None:
        known = ", ".join(sorted(cfg.inventories)) or "none"
        raise NotLaunchable(f"no inventory {inventory!r} in {cfg.path} (known: {known})")
    actor = context.current()
    with transaction.atomic():
        rollout = Rollout.objects.create(
            playbook=playbook, inventory=inventory, limit=limit, tags=tags, check_mode=check,
            launched_by=actor.user(), launched_by_name=actor.user_name(), source=source,
            source_ip=actor.source_ip, commit=project_commit(cfg.project))
        log_change("create", rollout, None)
    return rollout


def record_external(*, hosts: dict[str, dict[str, Any]], **fields: Any) -> Rollout:
    """A finished run from elsewhere (`sitevis rollout` on the command line)."""
    actor = context.current()
    with transaction.atomic():
        rollout = Rollout.objects.create(
            launched_by=actor.user(), launched_by_name=actor.user_name(),
            source=Rollout.Source.CLI, source_ip=actor.source_ip, **fields)
        for name, host in hosts.items():
            rollout.hosts.create(host=name, **host)
        log_change("create", rollout, None)
    findings.report(rollout)
    return rollout


def cancel(rollout: Rollout) -> Rollout:
    """A queued rollout is cancelled at once; a running one when the worker sees it."""
    with transaction.atomic():
        before = record.snapshot(rollout)
        queued = Rollout.objects.filter(pk=rollout.pk, state=Rollout.State.QUEUED).update(
            state=Rollout.State.CANCELLED, cancel_requested=True, ended=timezone.now())
        if not queued:
            Rollout.objects.filter(pk=rollout.pk, state=Rollout.State.RUNNING).update(
                cancel_requested=True)
        rollout.refresh_from_db()
        log_change("update", rollout, before)
    return rollout
