"""An issue's life: opened (or counted again) by a finding, acknowledged by an operator,
resolved by hand or after enough healthy evaluations. Opening and resolving queue the
site's webhooks; saves (not update()s) put the step in the change log."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sitevis.portal.health import notify
from sitevis.portal.health.models import Issue, Kind, State
from sitevis.portal.inventory.models import Box

AUTO = "auto"   # resolved_by of an issue the evaluator closed


class LifecycleError(ValueError):
    """A step the issue's status does not allow: one line."""


def unresolved(box: Box, kind: str) -> Issue | None:
    return Issue.objects.filter(box=box, kind=kind).exclude(status=State.RESOLVED).first()


def open_finding(box: Box, kind: str, detail: str = "",
                 now: datetime | None = None) -> Issue:
    """Record that `kind` is wrong on `box`: the box's unresolved issue of that kind is
    counted again (last seen, count, detail), or a new one opens (and its webhooks are
    queued). What the rollouts app calls with Kind.ROLLOUT_FAILED."""
    if kind not in Kind.values:
        raise ValueError(f"{kind!r} is not an issue kind ({', '.join(Kind.values)})")
    now = now or timezone.now()
    detail = detail[:500]
    for _ in range(2):   # a second opener racing us: count its issue instead
        found = unresolved(box, kind)
        if found is not None:
            Issue.objects.filter(pk=found.pk).update(
                last_seen=now, count=F("count") + 1, healthy_streak=0, detail=detail)
            found.refresh_from_db()
            return found
        try:
            with transaction.atomic():
                issue = Issue.objects.create(box=box, kind=kind, detail=detail,
                                             first_seen=now, last_seen=now)
                notify.enqueue(issue, notify.OPENED, now)
            return issue
        except IntegrityError:
            continue
    raise IntegrityError(f"could not open or find the {kind} issue of {box.name}")


def resolve(issue: Issue, by: str, note: str = "", now: datetime | None = None) -> Issue:
    if issue.status == State.RESOLVED:
        raise LifecycleError(f"issue {issue.pk} is already resolved")
    now = now or timezone.now()
    with transaction.atomic():
        issue.status, issue.resolved_by, issue.resolved_at = State.RESOLVED, by, now
        if note:
            issue.note = note[:500]
        issue.save()
        notify.enqueue(issue, notify.RESOLVED, now)
    return issue


def resolve_finding(box: Box, kind: str, by: str = AUTO, note: str = "",
                    now: datetime | None = None) -> Issue | None:
    """Resolve the box's unresolved issue of `kind`, if any (e.g. a later rollout of the
    box succeeded)."""
    found = unresolved(box, kind)
    return resolve(found, by, note, now) if found is not None else None


def acknowledge(issue: Issue, by: str, note: str = "", now: datetime | None = None) -> Issue:
    if issue.status != State.OPEN:
        raise LifecycleError(f"issue {issue.pk} is {issue.status}, not open")
    issue.status, issue.acknowledged_by = State.ACKNOWLEDGED, by
    issue.acknowledged_at = now or timezone.now()
    issue.note = note[:500]
    issue.save()
    return issue


def healthy(box: Box, kinds: set[str], resolve_after: int,
            now: datetime | None = None) -> list[Issue]:
    """One healthy evaluation of `kinds` on `box`: their unresolved issues count it, and
    those healthy `resolve_after` times in a row resolve. The issues resolved."""
    done = []
    for issue in Issue.objects.filter(box=box, kind__in=kinds).exclude(status=State.RESOLVED):
        issue.healthy_streak += 1
        if issue.healthy_streak >= resolve_after:
            done.append(resolve(issue, AUTO, now=now))
        else:
            Issue.objects.filter(pk=issue.pk).update(healthy_streak=issue.healthy_streak)
    return done
