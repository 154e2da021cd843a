"""The worker's part: claim the oldest queued rollout of an idle inventory, run it with
ansible-runner, store its events and host results as they come."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils import timezone

from sitevis.portal.config import ConfigError
from sitevis.portal.rollouts import annotate, conf, findings, handoff, redact
from sitevis.portal.rollouts.models import Rollout, RolloutEvent, RolloutHost
from sitevis.portal.rollouts.request import RunRequest
from sitevis.portal.rollouts.spool import Spool

if TYPE_CHECKING:
    from sitevis.runner import HostState

log = logging.getLogger("sitevis.portal.rollouts")
State = Rollout.State
EVENT_STATUS = {"runner_on_ok": "ok", "runner_on_failed": "failed",
                "runner_on_skipped": "skipped", "runner_on_unreachable": "unreachable"}


def _busy() -> QuerySet:
    return Rollout.objects.filter(state=State.RUNNING).values("inventory")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recover() -> tuple[list[int], list[Rollout]]:
    """Rollouts left running by a worker of this machine that is gone (killed, crashed,
    restarted): those the root runner still has are this worker's now, to follow on; the
    others failed, so their inventory is free again. (The failed ids, the taken over.)"""
    host = socket.gethostname()
    spool = _root_runner_spool()
    lost, taken = [], []
    for rollout in Rollout.objects.filter(state=State.RUNNING, worker__startswith=f"{host}:"):
        pid = rollout.worker.rsplit(":", 1)[1]
        if not pid.isdigit() or (int(pid) != os.getpid() and handoff.alive(int(pid))):
            continue   # its worker is there (this one's pid was another's before: gone)
        mine = Rollout.objects.filter(pk=rollout.pk, state=State.RUNNING, worker=rollout.worker)
        if spool is not None and handoff.resumable(spool, _request(rollout)):
            if mine.update(worker=worker_id()):
                taken.append(Rollout.objects.get(pk=rollout.pk))
        elif mine.update(state=State.FAILED, ended=timezone.now(),
                         detail=f"the worker running it (pid {pid}) stopped before it ended"):
            lost.append(rollout.pk)
    return lost, taken


def _root_runner_spool() -> Spool | None:
    try:
        root = conf.load().root_runner
    except ConfigError:
        return None
    return Spool(root) if root is not None else None


def claim() -> Rollout | None:
    """Queued → running in one conditional UPDATE: of two workers racing for a rollout
    one updates a row, the other none; an inventory with a running rollout is skipped
    (SQLite serializes writers; PostgreSQL re-checks the row after the other's commit)."""
    seen: set[str] = set()
    queued = Rollout.objects.filter(state=State.QUEUED).exclude(inventory__in=_busy())
    for candidate in queued.order_by("created", "id")[:50]:
        if candidate.inventory in seen:
            continue   # first come, first served within an inventory
        seen.add(candidate.inventory)
        if (Rollout.objects.filter(pk=candidate.pk, state=State.QUEUED)
                .exclude(inventory__in=_busy())
                .update(state=State.RUNNING, started=timezone.now(), worker=worker_id())):
            return Rollout.objects.get(pk=candidate.pk)
    return None


class Recorder:
    """Stores events and host rows as ansible-runner reports them; tells it to cancel."""

    HOSTS_EVERY_S = 1.0
    CANCEL_EVERY_S = 0.5

    def __init__(self, rollout: Rollout, stopping: Callable[[], bool]) -> None:
        self.rollout = rollout
        self.stopping = stopping
        self._hosts_at = 0.0
        self._cancel_at = 0.0
        self._cancel = False

    def event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        res = data.get("res")
        result: dict[str, Any] = res if isinstance(res, dict) else {}
        status = EVENT_STATUS.get(kind, "")
        if kind == "runner_on_ok" and result.get("changed"):
            status = "changed"
        if kind == "runner_on_failed" and data.get("ignore_errors"):
            status = "ignored"
        name = data.get("task") or data.get("play") or ""
        RolloutEvent.objects.get_or_create(rollout=self.rollout, counter=int(
            event.get("counter") or 0), defaults={
            "event": kind[:50], "host": str(data.get("host") or "")[:255],
            "task": redact.text(str(name))[:255], "status": status,
            "message": redact.message(result)[:500] if status else ""})

    def hosts(self, hosts: dict[str, HostState], kind: str) -> None:
        now = time.monotonic()
        if kind == "playbook_on_stats" or now - self._hosts_at >= self.HOSTS_EVERY_S:
            self._hosts_at = now
            save_hosts(self.rollout, hosts)

    def cancelled(self) -> bool:
        """Asked to cancel, or the worker is stopping (the play runs in it)."""
        return self.stopping() or self.asked()

    def asked(self) -> bool:
        """Someone asked to cancel (looked up at most every CANCEL_EVERY_S)."""
        now = time.monotonic()
        if not self._cancel and now - self._cancel_at >= self.CANCEL_EVERY_S:
            self._cancel_at = now
            self._cancel = Rollout.objects.filter(
                pk=self.rollout.pk, cancel_requested=True).exists()
        return self._cancel


def save_hosts(rollout: Rollout, hosts: dict[str, HostState]) -> None:
    for state in list(hosts.values()):
        RolloutHost.objects.update_or_create(rollout=rollout, host=state.name[:255], defaults={
            "ok": state.ok, "changed": state.changed, "failed": state.failed,
            "skipped": state.skipped, "unreachable": state.unreachable,
            "status": state.status, "task": redact.text(state.task)[:255]})


def _run(rollout: Rollout, recorder: Recorder,
         resume: bool = False) -> tuple[str, int | None, str, str]:
    """(state, rc, detail, artifact dir) of the run; `resume`: follow a hand-over a
    stopped worker left to the root runner. Raises handoff.Detached when this worker
    stops while the root runner runs it."""
    try:
        # Ansible only where rollouts are configured (the role installs it then).
        from sitevis.inventory import InventoryError
        from sitevis.runner import EventReducer, run_playbook
    except ImportError as err:
        return State.FAILED, None, f"ansible-runner is not installed here ({err})", ""
    try:
        cfg = conf.load()
    except ConfigError as err:
        return State.FAILED, None, str(err), ""
    inventory = cfg.inventory(rollout.inventory)
    if cfg.project is None or inventory is None:
        return State.FAILED, None, f"no inventory {rollout.inventory!r} in {cfg.path}", ""
    try:
        runner_stopped = False
        if resume and cfg.root_runner is None:
            return State.FAILED, None, f"{cfg.path} names no root_runner any more: the " \
                "rollout handed to it is no longer followed", ""
        if cfg.root_runner is not None:
            # A stopping worker leaves the play running there (an upgrade that restarts
            # the worker does not cancel itself); the next worker follows it on.
            spool, request = Spool(cfg.root_runner), _request(rollout)
            if not resume:
                handoff.hand_over(spool, request)
            handed = handoff.follow(
                spool, request, EventReducer(recorder.hosts, recorder.event),
                cancel=recorder.asked, detach=recorder.stopping)
            if handed is None:
                return State.CANCELLED, None, "cancelled before the root runner took it", ""
            result, runner_stopped = handed.result, handed.runner_stopped
            if handed.commit:   # what ran, where the portal cannot read the checkout
                Rollout.objects.filter(pk=rollout.pk).update(commit=handed.commit[:64])
        else:
            result = run_playbook(
                cfg.project, f"{rollout.playbook}.yml", inventory=str(inventory),
                limit=rollout.limit or None, tags=rollout.tags or None,
                check=rollout.check_mode, listener=recorder.hosts, on_event=recorder.event,
                cancel=recorder.cancelled)
    except (InventoryError, handoff.HandoffError) as err:
        return State.FAILED, None, str(err), ""
    except OSError as err:   # e.g. its runner directory is not writable for it
        return State.FAILED, None, f"{type(err).__name__}: {err}", ""
    save_hosts(rollout, result.hosts)
    if result.status == "canceled":
        detail = ("the worker stopped" if recorder.stopping() else
                  "the root runner stopped" if runner_stopped else "cancelled")
        return State.CANCELLED, result.rc, detail, result.artifact_dir
    if result.succeeded:
        return State.SUCCEEDED, result.rc, "", result.artifact_dir
    detail = result.no_host_message() if result.no_host_matched else ""
    return State.FAILED, result.rc, detail, result.artifact_dir


def _request(rollout: Rollout) -> RunRequest:
    """The hand-over of a rollout. Its token pairs the spool's files with this rollout
    row (never an older rollout's run of the same id), derived so a worker that follows
    the hand-over on after a restart finds it again; not a secret (the spool is the
    portal's and root's alone), so it survives a new secret key of an upgrade."""
    token = hashlib.sha256(
        f"sitevis-handoff:{rollout.pk}:{rollout.created.isoformat()}".encode()).hexdigest()[:32]
    return RunRequest(rollout=rollout.pk, token=token,
                      playbook=rollout.playbook, inventory=rollout.inventory,
                      limit=rollout.limit, tags=rollout.tags, check=rollout.check_mode)


def execute(rollout: Rollout, stopping: Callable[[], bool], resume: bool = False,
            ) -> Rollout:
    """Run a claimed rollout to its end (`resume`: follow one taken over by recover());
    never raises for a failed play. A rollout this worker left to the root runner when it
    stopped is returned still running."""
    if not resume:
        annotate.write(rollout, "started")
    try:
        state, rc, detail, artifacts = _run(rollout, Recorder(rollout, stopping), resume)
    except handoff.Detached as left:
        log.info("rollout #%s: %s; the next worker follows it", rollout.pk, left)
        return rollout
    Rollout.objects.filter(pk=rollout.pk).update(
        state=state, rc=rc, detail=redact.text(detail)[:500], artifacts=artifacts[:500],
        ended=timezone.now())
    rollout.refresh_from_db()
    annotate.write(rollout, state)
    findings.report(rollout)
    log.info("rollout #%s (%s on %s) %s", rollout.pk, rollout.playbook, rollout.inventory,
             state)
    return rollout
