"""Webhooks: one signed JSON body per issue opened or resolved, queued in the database
and POSTed by the evaluator process (never in a web request), retried with exponential
backoff, every attempt recorded.

Verifying a delivery: HMAC-SHA256 over the raw request body with the webhook's secret,
hex-encoded, must equal the `X-Sitevis-Signature` header (compare in constant time)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sitevis import __version__
from sitevis.portal.health.models import Attempt, Delivery, Issue, Webhook

SIGNATURE_HEADER = "X-Sitevis-Signature"
OPENED, RESOLVED = "issue.opened", "issue.resolved"


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _issue_json(issue: Issue) -> dict[str, Any]:
    return {"id": issue.pk, "site": issue.box.site.name, "box": issue.box.name,
            "kind": issue.kind, "status": issue.status, "detail": issue.detail,
            "first_seen": issue.first_seen.isoformat(), "last_seen": issue.last_seen.isoformat(),
            "count": issue.count, "resolved_by": issue.resolved_by}


def enqueue(issue: Issue, event: str, now: datetime) -> int:
    """A pending delivery of `event` for every enabled webhook of the issue's site."""
    hooks = Webhook.objects.filter(site_id=issue.box.site_id, enabled=True)
    for hook in hooks:
        delivery = Delivery.objects.create(webhook=hook, issue=issue, event=event, body="",
                                           next_attempt=now, created=now)
        delivery.body = json.dumps({"event": event, "delivery": delivery.pk,
                                    "time": now.isoformat(), "issue": _issue_json(issue)},
                                   sort_keys=True)
        delivery.save(update_fields=["body"])
    return len(hooks)


@dataclass(frozen=True)
class Policy:
    attempts: int            # give up after this many
    backoff_s: float         # wait before the 2nd attempt; doubles after each failure
    timeout_s: float


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend (or drop) the signed body elsewhere: it is a failure.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(delivery: Delivery, timeout_s: float) -> tuple[int | None, str]:
    """(HTTP status or None, error text) of one POST of the delivery's body."""
    body = delivery.body.encode()
    request = urllib.request.Request(delivery.webhook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"sitevis-portal/{__version__}",
        "X-Sitevis-Event": delivery.event, "X-Sitevis-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(body, delivery.webhook.secret)})
    try:
        with _OPENER.open(request, timeout=timeout_s) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as err:
        return err.code, f"answered {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return None, str(getattr(err, "reason", err))[:300]


def prune(now: datetime, keep_days: int) -> int:
    """Forget ended deliveries (delivered or failed) created more than `keep_days` ago,
    with their attempts: months of a site's events would otherwise grow without end.
    Pending ones stay, whatever their age. The number removed."""
    ended = (Delivery.Outcome.DELIVERED, Delivery.Outcome.FAILED)
    old = Delivery.objects.filter(outcome__in=ended,
                                  created__lt=now - timedelta(days=keep_days))
    return old.delete()[1].get(Delivery._meta.label, 0)


def deliver_due(now: datetime, policy: Policy) -> dict[str, int]:
    """Attempt every pending delivery that is due; counts of delivered, retrying, failed."""
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    due = (Delivery.objects.filter(outcome=Delivery.Outcome.PENDING, next_attempt__lte=now,
                                   webhook__enabled=True)
           .select_related("webhook").order_by("next_attempt", "id"))
    for delivery in due:
        started = time.monotonic()
        code, error = post(delivery, policy.timeout_s)
        Attempt.objects.create(delivery=delivery, time=now, status_code=code, error=error,
                               duration_ms=int((time.monotonic() - started) * 1000))
        delivery.attempts += 1
        if code is not None and 200 <= code < 300:
            delivery.outcome = Delivery.Outcome.DELIVERED
        elif delivery.attempts >= policy.attempts:
            delivery.outcome = Delivery.Outcome.FAILED
        else:
            wait = policy.backoff_s * 2 ** (delivery.attempts - 1)
            delivery.next_attempt = now + timedelta(seconds=wait)
        delivery.save(update_fields=["outcome", "attempts", "next_attempt"])
        pending = delivery.outcome == Delivery.Outcome.PENDING
        counts["retrying" if pending else str(delivery.outcome)] += 1
    return counts
