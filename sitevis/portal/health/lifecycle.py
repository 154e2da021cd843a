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
    for _ in range(3):   # another process opening or resolving it meanwhile: look again
        found = unresolved(box, kind)
        if found is not None:
            if Issue.objects.filter(pk=found.pk).exclude(status=State.RESOLVED).update(
                    last_seen=now, count=F("count") + 1, healthy_streak=0, detail=detail):
                found.refresh_from_db()
                return found
            continue
        try:
            with transaction.atomic():
                issue = Issue.objects.create(box=box, kind=kind, detail=detail,
                                             first_seen=now, last_seen=now)
                notify.enqueue(issue, notify.OPENED, now)
            return issue
        except IntegrityError:
            continue
    raise IntegrityError(f"could not open or find the {kind} issue of {box.name}")


def _locked(issue: Issue) -> Issue:
    """The issue as stored now, locked until the transaction ends: the evaluator and the
    web workers change issues concurrently, and a step must not undo another's."""
    return Issue.objects.select_for_update().select_related("box__site").get(pk=issue.pk)


def resolve(issue: Issue, by: str, note: str = "", now: datetime | None = None) -> Issue:
    now = now or timezone.now()
    with transaction.atomic():
        issue = _locked(issue)
        if issue.status == State.RESOLVED:
            raise LifecycleError(f"issue {issue.pk} is already resolved")
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
    with transaction.atomic():
        issue = _locked(issue)
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
    for pk in (Issue.objects.filter(box=box, kind__in=kinds).exclude(status=State.RESOLVED)
               .values_list("pk", flat=True)):
        with transaction.atomic():
            counted = (Issue.objects.filter(pk=pk).exclude(status=State.RESOLVED)
                       .update(healthy_streak=F("healthy_streak") + 1))
            issue = Issue.objects.get(pk=pk)
            if counted and issue.healthy_streak >= resolve_after:
                done.append(resolve(issue, AUTO, now=now))
    return done
