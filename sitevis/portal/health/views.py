"""The Issues pages: the list (filters in the URL; unresolved, most recent first by
default), one issue with its history from the change log, and acknowledge/resolve for
operators and admins through the same `lifecycle` steps the API takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from sitevis.portal.accounts import roles
from sitevis.portal.changes.models import ObjectChange
from sitevis.portal.health import lifecycle
from sitevis.portal.health.api import IssueFilter
from sitevis.portal.health.forms import IssueFilterForm, NoteForm
from sitevis.portal.health.models import Issue, State
from sitevis.portal.pages import access

ROWS = 200   # the list's most recent; the filters narrow it down


def visible(user: Any) -> QuerySet[Issue]:
    """Issues of the user's sites, as the API's ScopedMixin limits them."""
    found = Issue.objects.select_related("box", "box__site")
    allowed = roles.allowed_site_names(user)
    return found if allowed is None else found.filter(box__site__name__in=allowed)


def unresolved_per_box(user: Any) -> dict[tuple[str, str], int]:
    """(site, box) → its unresolved issues, for the overview's boxes (one query)."""
    rows = (visible(user).exclude(status=State.RESOLVED)
            .order_by().values_list("box__site__name", "box__name").annotate(n=Count("id")))
    return {(site, box): n for site, box, n in rows}


def may_act(request: HttpRequest) -> bool:
    return roles.at_least(request.user, roles.OPERATOR)


@access.page
def issue_list(request: HttpRequest) -> HttpResponse:
    form = IssueFilterForm(request.GET)
    shown: list[Issue] = []
    total = 0
    if form.is_valid():
        found = IssueFilter(form.api_params(), queryset=visible(request.user)).qs
        total = found.count()
        shown = list(found[:ROWS])
    return access.render_page(request, "health/issues.html", {
        "form": form, "issues": shown, "total": total,
        "sites": access.visible_sites(request),
        "boxes": sorted({b.name for b in access.visible_boxes(request)})})


def _issue(request: HttpRequest, pk: int) -> Issue:
    found = visible(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such issue")
    return found


def history(issue: Issue) -> list[dict[str, Any]]:
    """Each recorded step, oldest first: opened, acknowledged, resolved (the evaluator's
    counting is not a change; the issue's count and last seen say it)."""
    steps = []
    for change in ObjectChange.objects.filter(
            object_type="health.issue", object_id=str(issue.pk)).order_by("time", "id"):
        after = change.after or {}
        status = after.get("status")
        if change.action == ObjectChange.Action.CREATE:
            what, who = "opened", change.user_name
        elif status == State.RESOLVED:
            by = after.get("resolved_by", "")
            what = "resolved automatically" if by == lifecycle.AUTO else "resolved"
            who = "" if by == lifecycle.AUTO else by or change.user_name
        elif status == State.ACKNOWLEDGED:
            what, who = "acknowledged", after.get("acknowledged_by") or change.user_name
        else:
            what, who = change.action, change.user_name
        steps.append({"time": change.time, "what": what, "who": who,
                      "note": after.get("note", "") if what != "opened" else ""})
    if issue.count > 1:
        steps.append({"time": issue.last_seen, "who": "", "note": "",
                      "what": f"counted again: found {issue.count} times, last here"})
    return sorted(steps, key=lambda step: step["time"])


@access.page
def issue_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _issue(request, pk))


def _detail(request: HttpRequest, issue: Issue, error: str = "",
            note: NoteForm | None = None, status: int = 200) -> HttpResponse:
    answer = access.render_page(request, "health/issue.html", {
        "issue": issue, "history": history(issue), "may_act": may_act(request),
        "note_form": note or NoteForm(), "error": error})
    answer.status_code = status
    return answer


def _step(request: HttpRequest, pk: int, step: Callable[..., Issue]) -> HttpResponse:
    if not may_act(request):
        raise PermissionDenied("operators and admins acknowledge and resolve issues")
    issue = _issue(request, pk)
    note = NoteForm(request.POST)
    if not note.is_valid():
        return _detail(request, issue, note=note, status=400)
    try:
        step(issue, request.user.get_username(), note.cleaned_data["note"])
    except lifecycle.LifecycleError as err:   # someone (or the evaluator) was quicker
        return _detail(request, _issue(request, pk), str(err), status=409)
    return HttpResponseRedirect(reverse("health:issue", args=[pk]))


@require_POST
@access.page
def issue_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, lifecycle.acknowledge)


@require_POST
@access.page
def issue_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _step(request, pk, lifecycle.resolve)
