"""The rollout pages: history with a launch form (operators and admins only), and one
rollout with its host matrix and live progress (htmx polls the events after the last
counter; a reload starts again from the stored ones)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from sitevis.portal.accounts import roles
from sitevis.portal.config import ConfigError
from sitevis.portal.pages import access
from sitevis.portal.rollouts import api, conf, launch, serializers
from sitevis.portal.rollouts.models import Rollout

PAGE_EVENTS = 1000


class LaunchForm(forms.Form):
    playbook = forms.ChoiceField(choices=Rollout.Playbook.choices)
    inventory = forms.ChoiceField(choices=[])
    limit = forms.CharField(max_length=255, required=False, validators=[serializers.LIMIT])
    tags = forms.CharField(max_length=255, required=False, validators=[serializers.TAGS])
    check = forms.BooleanField(required=False, label="check mode (change nothing)")

    def __init__(self, *args: Any, inventories: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["inventory"].choices = [(name, name) for name in inventories]


def _inventories(request: HttpRequest) -> list[str]:
    try:
        names = sorted(conf.load().inventories)
    except ConfigError:
        return []
    allowed = roles.allowed_site_names(request.user)
    return [n for n in names if allowed is None or n in allowed]


def _may_launch(request: HttpRequest) -> bool:
    return roles.at_least(request.user, roles.OPERATOR)


@access.page
def rollout_list(request: HttpRequest) -> HttpResponse:
    form, error = None, ""
    if _may_launch(request):
        form = LaunchForm(request.POST or None, inventories=_inventories(request))
        if request.method == "POST" and form.is_valid():
            try:
                rollout = launch.launch(source=Rollout.Source.WEB, **form.cleaned_data)
            except launch.NotLaunchable as err:
                error = str(err)
            else:
                return HttpResponseRedirect(reverse("rollouts:detail", args=[rollout.pk]))
    elif request.method == "POST":
        raise PermissionDenied("operators and admins launch rollouts")
    rollouts = api.visible(request.user)[:100]
    return access.render_page(request, "rollouts/rollouts.html", {
        "rollouts": rollouts, "form": form, "error": error})


def _rollout(request: HttpRequest, pk: int) -> Rollout:
    found = api.visible(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such rollout")
    return found


def _live(rollout: Rollout, after: int) -> dict[str, Any]:
    events = list(rollout.events.filter(counter__gt=after)[:PAGE_EVENTS])
    return {"rollout": rollout, "events": events, "hosts": rollout.hosts.all(),
            "last": events[-1].counter if events else after,
            "active": rollout.state in Rollout.ACTIVE}


@access.page
def rollout_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rollout = _rollout(request, pk)
    context = _live(rollout, 0) | {"may_cancel": _may_launch(request)}
    return access.render_page(request, "rollouts/rollout.html", context)


@access.page
def rollout_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress part and the events after ?after=<counter> (htmx every 2 s)."""
    try:
        after = max(0, min(int(request.GET.get("after", "0")), 2**31 - 1))
    except ValueError:
        after = 0
    context = _live(_rollout(request, pk), after) | {"may_cancel": _may_launch(request)}
    return render(request, "rollouts/_live.html", context)


@require_POST
@access.page
def rollout_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    if not _may_launch(request):
        raise PermissionDenied("operators and admins cancel rollouts")
    rollout = _rollout(request, pk)
    if rollout.state in Rollout.ACTIVE:
        launch.cancel(rollout)
    return HttpResponseRedirect(reverse("rollouts:detail", args=[pk]))
