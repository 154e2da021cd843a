"""An InfluxQL query type for grafana-foundation-sdk, which ships none for InfluxDB.

Registered as a dataquery variant under the datasource type "influxdb" (the SDK's
documented way to add a query type), so Dashboard.from_json decodes panel targets back
into InfluxQuery instead of an untyped bag, and the round trip stays typed.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import DataSourceRef

DATASOURCE_TYPE = "influxdb"
ResultFormat = Literal["time_series", "table"]


class InfluxQuery(cogvariants.Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB datasource stores it."""

    def __init__(self, query: str = "", ref_id: str | None = None, hide: bool | None = None,
                 datasource: DataSourceRef | None = None, raw_query: bool = True,
                 result_format: ResultFormat | None = None,
                 alias: str | None = None) -> None:
        self.query = query
        self.ref_id = ref_id
        self.hide = hide
        self.datasource = datasource
        self.raw_query = raw_query
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"query": self.query, "rawQuery": self.raw_query}
        if self.ref_id is not None:
            payload["refId"] = self.ref_id
        if self.hide is not None:
            payload["hide"] = self.hide
        if self.datasource is not None:
            payload["datasource"] = self.datasource.to_json()
        if self.result_format is not None:
            payload["resultFormat"] = self.result_format
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            query=data.get("query", ""),
            ref_id=data.get("refId"),
            hide=data.get("hide"),
            datasource=(DataSourceRef.from_json(data["datasource"])
                        if "datasource" in data else None),
            raw_query=data.get("rawQuery", True),
            result_format=data.get("resultFormat"),
            alias=data.get("alias"),
        )


class Query(cogbuilder.Builder[InfluxQuery]):
    """Builder for InfluxQuery, in the style of the SDK's own query builders."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQuery(query=query)

    def build(self) -> InfluxQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self

    def datasource(self, ref: DataSourceRef) -> Self:
        self._internal.datasource = ref
        return self

    def result_format(self, result_format: ResultFormat) -> Self:
        self._internal.result_format = result_format
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self


def register() -> None:
    """Teach the SDK's runtime to decode "influxdb" targets as InfluxQuery (idempotent)."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
        identifier=DATASOURCE_TYPE, from_json_hook=InfluxQuery.from_json))
