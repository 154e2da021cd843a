"""Query parameters of the traffic endpoints: checked here (400 with the reason) before
anything reaches InfluxDB, and documented in the OpenAPI schema from the same classes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from sitevis.portal.traffic import timerange
from sitevis.query import DURATION, MAX_TEXT, QueryError, tag_value

DIRECTIONS = ("ingress", "egress", "any")


def _tag(value: str) -> str:
    try:
        return tag_value(value)
    except QueryError as err:
        raise serializers.ValidationError(str(err)) from None


class TagField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=MAX_TEXT, required=False, validators=[_tag], **kwargs)


class RangeParams(serializers.Serializer):
    since = serializers.RegexField(DURATION.pattern, max_length=64, required=False,
                                   help_text="start, this long ago (e.g. 1h, 7d); default 1h")
    until = serializers.RegexField(rf"0|{DURATION.pattern}", max_length=64, required=False,
                                   help_text="end, this long ago (default now)")
    start = serializers.DateTimeField(required=False, help_text="ISO 8601 start (or since)")
    end = serializers.DateTimeField(required=False, help_text="ISO 8601 end (default now)")
    site = TagField(help_text="only this site")
    box = TagField(help_text="only this box")
    interface = TagField(help_text="only this interface")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["range"] = timerange.resolve(attrs.get("since"), attrs.get("until"),
                                               attrs.get("start"), attrs.get("end"))
        except QueryError as err:
            raise serializers.ValidationError(str(err)) from None
        return attrs


class TopParams(RangeParams):
    by = serializers.ChoiceField(["talkers", "services", "protocols", "boxes"],
                                 default="talkers")
    dir = serializers.ChoiceField(DIRECTIONS, default="ingress",
                                  help_text="ingress (default) counts each flow once")
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=10)


class SeriesParams(RangeParams):
    per = serializers.ChoiceField(["box", "interface"], default="box")
    dir = serializers.ChoiceField(DIRECTIONS, default="any")


class PacketParams(RangeParams):
    dir = serializers.ChoiceField(DIRECTIONS, default="any")
    proto = TagField(help_text="tcp, udp, icmp, ...")
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)


class HealthParams(serializers.Serializer):
    window = serializers.RegexField(DURATION.pattern, max_length=64, required=False,
                                    help_text="sums over this long (default 5m)")


# Responses, for the schema.
COMPUTED_AHEAD = ("when the answer to a preset range was computed ahead for every site "
                  "(start and end are that pass's); null: computed for this request")
class RowOut(serializers.Serializer):
    key = serializers.DictField(child=serializers.CharField(allow_blank=True))
    bytes = serializers.IntegerField()
    packets = serializers.IntegerField()


class TopOut(serializers.Serializer):
    by = serializers.CharField()
    dir = serializers.CharField()
    rp = serializers.CharField(allow_null=True)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total_bytes = serializers.IntegerField()
    computed_ahead = serializers.DateTimeField(allow_null=True, help_text=COMPUTED_AHEAD)
    rows = RowOut(many=True)
    other = RowOut()


class SeriesOut(serializers.Serializer):
    key = serializers.DictField(child=serializers.CharField(allow_blank=True))
    times_ms = serializers.ListField(child=serializers.IntegerField())
    bits_per_s = serializers.ListField(child=serializers.FloatField())
    packets_per_s = serializers.ListField(child=serializers.FloatField())


class TrafficOut(serializers.Serializer):
    rp = serializers.CharField(allow_null=True)
    step = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    computed_ahead = serializers.DateTimeField(allow_null=True, help_text=COMPUTED_AHEAD)
    series = SeriesOut(many=True)


class PacketOut(serializers.Serializer):
    time = serializers.IntegerField(help_text="epoch ms")
    site = serializers.CharField(allow_null=True)
    box = serializers.CharField(allow_null=True)
    iface = serializers.CharField(allow_null=True)
    dir = serializers.CharField(allow_null=True)
    proto = serializers.CharField(allow_null=True)
    src = serializers.CharField(allow_null=True, allow_blank=True)
    dst = serializers.CharField(allow_null=True, allow_blank=True)
    sport = serializers.IntegerField(allow_null=True)
    dport = serializers.IntegerField(allow_null=True)
    length = serializers.IntegerField(allow_null=True)
    ttl = serializers.IntegerField(allow_null=True)
    tcp_flags = serializers.IntegerField(allow_null=True)
    sample_rate = serializers.IntegerField(allow_null=True)


class PacketsOut(serializers.Serializer):
    packets = PacketOut(many=True)


class HealthOut(serializers.Serializer):
    box = serializers.CharField()
    site = serializers.CharField()
    window = serializers.CharField()
    last_seen_ms = serializers.IntegerField(allow_null=True)
    coverage = serializers.FloatField(allow_null=True)
    overflow_events = serializers.IntegerField(allow_null=True)
    ringbuf_lost = serializers.IntegerField(allow_null=True)
    write_errors = serializers.IntegerField(allow_null=True)
    filters_restored = serializers.IntegerField(allow_null=True)
    samples_rate_limited = serializers.IntegerField(allow_null=True)
    unaccounted = serializers.IntegerField(allow_null=True)
    flows_exported = serializers.IntegerField(allow_null=True)
    interfaces_attached = serializers.IntegerField(allow_null=True)
    spool_bytes = serializers.IntegerField(allow_null=True)
    spool_files = serializers.IntegerField(allow_null=True)
    queue_bytes = serializers.IntegerField(allow_null=True)
    bpf_ns_per_packet = serializers.FloatField(allow_null=True)


class FreshOut(serializers.Serializer):
    site = serializers.CharField()
    box = serializers.CharField()
    last_seen_ms = serializers.IntegerField(allow_null=True)
    age_s = serializers.FloatField(allow_null=True)
    fresh = serializers.BooleanField()


class InfluxOut(serializers.Serializer):
    reachable = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)


class StatusOut(serializers.Serializer):
    version = serializers.CharField()
    influxdb = InfluxOut()
    boxes = FreshOut(many=True)
