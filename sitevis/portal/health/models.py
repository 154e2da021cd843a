"""Health issues (one unresolved per box and kind), and the webhooks that hear of them."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sitevis.portal.inventory.models import Box, Site


class Kind(models.TextChoices):
    """What is wrong (docs/architecture.md, "Health issues", says what fires each)."""

    SILENT = "silent"
    COVERAGE = "coverage"
    OVERFLOW = "overflow"
    RINGBUF_LOST = "ringbuf_lost"
    WRITE_ERRORS = "write_errors"
    SPOOL_GROWING = "spool_growing"
    FILTERS_RESTORED = "filters_restored"
    ROLLOUT_FAILED = "rollout_failed"


class State(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Issue(models.Model):
    box = models.ForeignKey(Box, on_delete=models.CASCADE, related_name="issues")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    detail = models.CharField(max_length=500, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)   # evaluations (or calls) that found it
    healthy_streak = models.PositiveIntegerField(default=0)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)   # a user, or "auto"
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [models.UniqueConstraint(
            fields=["box", "kind"], condition=~Q(status="resolved"),
            name="one_unresolved_issue_per_box_and_kind")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.box.name}"


class Webhook(models.Model):
    """Where a site's issue events are POSTed, signed with `secret` (never shown)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.site.name}"


class Delivery(models.Model):
    """One event for one webhook; the body is kept as sent, so every retry (and anyone
    checking later) signs the same bytes."""

    class Outcome(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"       # gave up after the configured attempts

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    issue = models.ForeignKey(Issue, null=True, on_delete=models.SET_NULL, related_name="+")
    event = models.CharField(max_length=32)
    body = models.TextField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt = models.DateTimeField(db_index=True)
    created = models.DateTimeField()

    class Meta:
        ordering = ["-id"]


class Attempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    time = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]

