"""A rollout (one ansible-playbook run), its events by counter and its per-host results."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Rollout(models.Model):
    class Playbook(models.TextChoices):
        SITE = "site"
        VERIFY = "verify"
        REMOVE = "remove"

    class Source(models.TextChoices):
        WEB = "web"
        API = "api"
        CLI = "cli"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (State.QUEUED, State.RUNNING)

    playbook = models.CharField(max_length=10, choices=Playbook.choices)
    inventory = models.CharField(max_length=100, db_index=True)   # a rollouts.yml name
    limit = models.CharField(max_length=255, blank=True)
    tags = models.CharField(max_length=255, blank=True)
    check_mode = models.BooleanField(default=False)   # --check
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    launched_by_name = models.CharField(max_length=150)   # kept when the user is deleted
    source = models.CharField(max_length=3, choices=Source.choices)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    commit = models.CharField(max_length=64, blank=True)   # git HEAD, else sitevis version
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED,
                             db_index=True)
    cancel_requested = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    rc = models.IntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)   # why it failed before a play
    artifacts = models.CharField(max_length=500, blank=True)  # ansible-runner's artifact dir
    worker = models.CharField(max_length=300, blank=True)     # host:pid of the worker running it

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.playbook} on {self.inventory}"

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round((self.ended - self.started).total_seconds(), 3)


class RolloutEvent(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="events")
    counter = models.IntegerField()
    time = models.DateTimeField(auto_now_add=True)
    event = models.CharField(max_length=50)
    host = models.CharField(max_length=255, blank=True)
    task = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, blank=True)
    message = models.CharField(max_length=500, blank=True)   # redacted (redact.py)

    class Meta:
        ordering = ["counter"]
        constraints = [models.UniqueConstraint(fields=["rollout", "counter"],
                                               name="rollout_event_counter")]


class RolloutHost(models.Model):
    """One host's line of the recap (sitevis.runner.HostState)."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="hosts")
    host = models.CharField(max_length=255)
    ok = models.IntegerField(default=0)
    changed = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    unreachable = models.BooleanField(default=False)
    status = models.CharField(max_length=20)
    task = models.CharField(max_length=255, blank=True)   # the last task it started

    class Meta:
        ordering = ["host"]
        constraints = [models.UniqueConstraint(fields=["rollout", "host"],
                                               name="rollout_host")]
