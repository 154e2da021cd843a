"""The Issues pages' forms: the list's filters (a GET form: the URL holds the state) and
the note that goes with an acknowledgement or a hand resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from sitevis.portal.health.models import Kind, State
from sitevis.portal.pages.forms import tag_field

UNRESOLVED = "unresolved"
STATUSES = [(UNRESOLVED, "unresolved"), *State.choices,
            ("any", "any status")]
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
         "30d": timedelta(days=30)}
SINCE_LABELS = [("", "any time"), ("1h", "last hour"), ("24h", "last 24 hours"),
                ("7d", "last 7 days"), ("30d", "last 30 days")]


class IssueFilterForm(forms.Form):
    site = tag_field("Site", "sites")
    box = tag_field("Box", "boxes")
    kind = forms.ChoiceField(label="Kind", choices=[("", "any kind"), *Kind.choices],
                             required=False)
    status = forms.ChoiceField(label="Status", choices=STATUSES, required=False)
    since = forms.ChoiceField(label="Last seen", choices=SINCE_LABELS, required=False)

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        # The status control shows what is in force: unresolved unless the URL says so.
        if data is not None and not data.get("status"):
            data = data.copy()
            data["status"] = UNRESOLVED
        super().__init__(data, **kwargs)

    def api_params(self, now: datetime | None = None) -> dict[str, str]:
        """The cleaned filters as the API's IssueFilter parameters (one filter logic)."""
        data = self.cleaned_data
        params = {k: data[k] for k in ("site", "box", "kind") if data.get(k)}
        status = data.get("status") or UNRESOLVED
        if status == UNRESOLVED:
            params["unresolved"] = "true"
        elif status != "any":
            params["status"] = status
        if data.get("since"):
            params["since"] = ((now or timezone.now()) - SINCE[data["since"]]).isoformat()
        return params


class NoteForm(forms.Form):
    note = forms.CharField(label="Note", max_length=500, required=False,
                           widget=forms.TextInput(attrs={"size": 40}))
