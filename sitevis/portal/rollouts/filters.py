"""Filters of the rollout history (unknown parameters are a 400, as everywhere)."""

from __future__ import annotations

import django_filters

from sitevis.portal.api.filters import IdFilter
from sitevis.portal.rollouts.models import Rollout


class RolloutFilter(django_filters.FilterSet):
    id = IdFilter()
    playbook = django_filters.ChoiceFilter(choices=Rollout.Playbook.choices)
    inventory = django_filters.CharFilter(max_length=100)
    state = django_filters.ChoiceFilter(choices=Rollout.State.choices)
    source = django_filters.ChoiceFilter(choices=Rollout.Source.choices)
    launched_by = django_filters.CharFilter(field_name="launched_by_name", max_length=150)
    since = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")

    class Meta:
        model = Rollout
        fields = ["id", "playbook", "inventory", "state", "source"]
