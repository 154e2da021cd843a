"""The box's series budget: which flow rows keep their addresses, and where the rest go.

Every distinct (iface, dir, proto, src, dst, service) written is an InfluxDB series, so a
box facing the internet would create millions a day. Here a row keeps its addresses only
when its key is an admitted talker (export/admission.py) and among the interval's top_n of
its interface and direction; every other row is folded, exactly, into a row whose tags
are all bounded:

- src, dst: the address's class from `series.prefixes` (first match), else `other`;
  non-IP rows have none and keep none;
- service: kept when it is one of the box's admitted services, else `<proto>/other`
  (`eth/other`, `ip/other` for non-IP frames and for `ip:<n>` protocols); icmp and
  icmpv6 keep theirs (a fixed name);
- proto: kept, except that `ip:<n>` becomes `ip:other` when its service was folded.

So a box writes at most talkers + 24 x admissions_per_hour (+ a ten-minute burst)
talker series a day, plus folded series bounded by interfaces x directions x
(services + 24 x service_admissions_per_hour + protocols) x (address classes + 1)^2
(docs/schema.md "Series budget").
Packets and bytes only move between rows: the sums per interface and direction stay.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from sitevis_collector.config import SeriesConfig
from sitevis_collector.export.admission import Admission

OTHER = "other"
PORTED = ("tcp", "udp", "sctp", "udplite", "dccp")
FIXED_SERVICES = ("icmp", "icmpv6")     # the protocol is the service: a fixed name

# (proto, src, dst, service) within one (iface, dir) -> [packets, bytes, flows, tcp_flags]
RowKey = tuple[str, str, str, str]
Row = list[int]
TalkerKey = tuple[str, str, str, str, str, str]   # iface, dir + RowKey


def folded_service(proto: str, service: str) -> str:
    """A service that was not admitted, as a bounded name."""
    if proto in FIXED_SERVICES:
        return service
    if proto.startswith("ip:"):
        return "ip/other"
    return f"{proto}/{OTHER}"


class SeriesBudget:
    """Admission state of one box, kept across intervals; fold() once per interval."""

    def __init__(self, cfg: SeriesConfig, interval: float) -> None:
        self.talkers: Admission[TalkerKey] = Admission(
            cfg.talkers, cfg.admissions_per_hour, hysteresis=cfg.hysteresis,
            half_life=cfg.half_life, interval=interval, min_share=cfg.min_share)
        self.services: Admission[str] = Admission(
            cfg.services, cfg.service_admissions_per_hour, hysteresis=cfg.hysteresis,
            half_life=cfg.half_life, interval=interval, min_share=cfg.min_share)
        self.prefixes = cfg.prefixes
        self.last: dict[str, int] = {}      # this interval's figures, for the self-metrics

    def state(self) -> dict:
        return {"talkers": self.talkers.state(), "services": self.services.state()}

    def restore(self, state: dict, elapsed_s: float) -> None:
        self.talkers.restore(state["talkers"], elapsed_s)
        self.services.restore(state["services"], elapsed_s)

    def fold(self, groups: dict[tuple[str, str], dict[RowKey, Row]], top_n: int
             ) -> Iterator[tuple[tuple[str, str], dict[RowKey, Row]]]:
        """Admit from this interval's rows, then yield each (iface, dir) group as the rows
        to write: detailed talkers and folded rows, summed where two fold into one."""
        talker_admitted = self.talkers.update(_talker_weights(groups))
        service_admitted = self.services.update(_service_weights(groups))
        folded_rows = 0
        classes: dict[str, str] = {"": ""}      # per interval: addresses are unbounded
        for group in sorted(groups):
            rows = groups.pop(group)     # freed once written
            out: dict[RowKey, Row] = {}
            detailed = self._detailed(group, rows, top_n)
            for key, row in rows.items():
                if key in detailed:
                    _add(out, key, row)
                    continue
                folded_rows += 1
                proto, src, dst, service = key
                kept = service if service in self.services else folded_service(proto, service)
                if kept != service and proto.startswith("ip:"):
                    proto = "ip:other"
                _add(out, (proto, self._class(src, classes), self._class(dst, classes), kept),
                     row)
            yield group, out
        self.last = {
            "talkers_admitted": len(self.talkers),
            "talker_admissions": talker_admitted,
            "services_admitted": len(self.services),
            "service_admissions": service_admitted,
            "rows_folded": folded_rows,
        }

    def _detailed(self, group: tuple[str, str], rows: dict[RowKey, Row], top_n: int
                  ) -> set[RowKey]:
        """The admitted talker rows of one group, at most top_n of them by bytes."""
        ifname, direction = group
        admitted = self.talkers.admitted
        keys = [key for key in rows
                if key[1] and (ifname, direction, *key) in admitted]
        if len(keys) > top_n:
            # Largest bytes first, ties by packets, then by key: a deterministic cut.
            keys.sort(key=lambda k: (-rows[k][1], -rows[k][0], k))
            keys = keys[:top_n]
        return set(keys)

    def _class(self, address: str, cache: dict[str, str]) -> str:
        name = cache.get(address)
        if name is None:
            name = OTHER
            if self.prefixes:
                ip = ipaddress.ip_address(address)
                name = next((n for n, net in self.prefixes
                             if ip.version == net.version and ip in net), OTHER)
            cache[address] = name
        return name


def _talker_weights(groups: dict[tuple[str, str], dict[RowKey, Row]]
                    ) -> Iterator[tuple[TalkerKey, int]]:
    for (ifname, direction), rows in groups.items():
        for key, row in rows.items():
            if key[1]:      # IP rows only: non-IP rows carry no addresses to keep
                yield (ifname, direction, *key), row[1]


def _service_weights(groups: dict[tuple[str, str], dict[RowKey, Row]]
                     ) -> Iterator[tuple[str, int]]:
    sums: dict[str, int] = {}
    for rows in groups.values():
        for (proto, _, _, service), row in rows.items():
            if proto not in FIXED_SERVICES:
                sums[service] = sums.get(service, 0) + row[1]
    return iter(sums.items())


def _add(out: dict[RowKey, Row], key: RowKey, row: Row) -> None:
    have = out.get(key)
    if have is None:
        out[key] = list(row)
    else:
        have[0] += row[0]
        have[1] += row[1]
        have[2] += row[2]
        have[3] |= row[3]
