"""Rollouts as the API shows and takes them."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from sitevis.portal.rollouts import request
from sitevis.portal.rollouts.models import Rollout, RolloutEvent, RolloutHost

INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}
COUNT = {"min_value": 0, "max_value": 2**31 - 1}
# Host patterns and tags reach ansible-playbook's command line (request.py).
LIMIT = RegexValidator(request.LIMIT_PATTERN, "hosts, groups and patterns only")
TAGS = RegexValidator(request.TAGS_PATTERN, "comma-separated tag names only")


class HostSerializer(serializers.ModelSerializer):
    class Meta:
        model = RolloutHost
        fields = ["host", "status", "ok", "changed", "failed", "skipped", "unreachable", "task"]


class RolloutSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:rollout-detail")
    check = serializers.BooleanField(source="check_mode")
    duration = serializers.FloatField(read_only=True, allow_null=True,
                                      help_text="seconds from start to end")
    hosts = HostSerializer(many=True, read_only=True, help_text="the per-host matrix")

    class Meta:
        model = Rollout
        fields = ["id", "url", "playbook", "inventory", "limit", "tags", "check",
                  "launched_by_name", "source", "source_ip", "commit", "state",
                  "cancel_requested", "created", "started", "ended", "duration", "rc",
                  "detail", "artifacts", "worker", "hosts"]
        read_only_fields = fields


class LaunchSerializer(serializers.Serializer):
    playbook = serializers.ChoiceField(choices=Rollout.Playbook.choices)
    inventory = serializers.CharField(max_length=100, help_text="a name in rollouts.yml")
    limit = serializers.CharField(max_length=255, required=False, default="",
                                  allow_blank=True, validators=[LIMIT])
    tags = serializers.CharField(max_length=255, required=False, default="",
                                 allow_blank=True, validators=[TAGS])
    check = serializers.BooleanField(required=False, default=False)


class LaunchedSerializer(RolloutSerializer):
    message = serializers.CharField(read_only=True,
                                    help_text="queued, and behind which rollout it waits")

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "message"]


class HostResultSerializer(serializers.Serializer):
    ok = serializers.IntegerField(**COUNT)
    changed = serializers.IntegerField(**COUNT)
    failed = serializers.IntegerField(**COUNT)
    skipped = serializers.IntegerField(**COUNT)
    unreachable = serializers.BooleanField()
    status = serializers.ChoiceField(choices=["ok", "changed", "failed", "unreachable"])


class RecordSerializer(LaunchSerializer):
    """A finished run from `sitevis rollout` (source cli)."""

    inventory = serializers.CharField(max_length=100)
    commit = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")
    outcome = serializers.ChoiceField(choices=[Rollout.State.SUCCEEDED, Rollout.State.FAILED,
                                             Rollout.State.CANCELLED])
    rc = serializers.IntegerField(**INT32)
    started = serializers.DateTimeField()
    ended = serializers.DateTimeField()
    hosts = serializers.DictField(child=HostResultSerializer())

    def validate_hosts(self, hosts: dict[str, Any]) -> dict[str, Any]:
        if len(hosts) > 10000 or any(not 0 < len(name) <= 255 for name in hosts):
            raise serializers.ValidationError("at most 10000 hosts, names of 1-255 characters")
        return hosts

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["ended"] < data["started"]:
            raise serializers.ValidationError({"ended": ["before started"]})
        return data


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RolloutEvent
        fields = ["counter", "time", "event", "host", "task", "status", "message"]


class EventsSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Rollout.State.choices)
    last = serializers.IntegerField(help_text="the last counter: ask ?after=<last> next")
    events = EventSerializer(many=True)


class EventsParams(serializers.Serializer):
    after = serializers.IntegerField(required=False, default=0, **COUNT)
