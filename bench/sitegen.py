"""Synthetic sites for load benchmarks: boxes, traffic profiles, and the points the real
collector code makes of them (bench/README.md, "Site-scale load").

Per box and simulated interval a profile makes a `DrainResult` (what the kernel side
would hand over), and the collector's own `iter_points` turns it into points with one
`SeriesBudget` per box kept across intervals, encoded by the collector's `lineproto`.
Nothing here talks to InfluxDB except `fill`, which POSTs the batches to a /write URL.

Reusable (the portal's benchmark feeds a site the same way):

    for batch in generate("site", 100, "internet", start_ns, hours=24, interval=300):
        ...                               # batch.raw / batch.long: line protocol
    stats = fill("http://127.0.0.1:8086", "sitevis", generate(...), auth=("u", "p"))

Time compression: one simulated interval (default 300 s, the budget told so, so that
admissions per hour and the score's half-life are right) carries the distinct rows of
ONE real 10-s interval of the profile, recurring peers with the bytes of the whole
simulated interval. See bench/README.md for what that keeps exact and what it scales.
"""

from __future__ import annotations

import base64
import http.client
import queue
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sitevis_collector.config import Config, parse_config
from sitevis_collector.export.aggregate import FLOW, IFACE, iter_points, new_budget
from sitevis_collector.export.budget import SeriesBudget
from sitevis_collector.export.lineproto import Point, encode_line
from sitevis_collector.records import EGRESS, INGRESS, DrainResult, FlowCounters, FlowKey

REAL_INTERVAL = 10.0            # the collector's default interval, seconds
IFACE_NAME = "eth0"
IPV4 = 0x0800
TCP_SYN = 0x02
TCP_ACK_PSH = 0x18
LONG_TAGS = {FLOW: ("site", "box", "iface", "dir", "proto", "service"),
             IFACE: ("site", "box", "iface", "dir")}     # roles/influxdb defaults
LONG_FIELDS = {FLOW: ("packets", "bytes", "flows"), IFACE: ("packets", "bytes")}
LONG_BUCKET_NS = 300 * 10**9    # influxdb_downsample_interval: 5m

# "old": what the collector wrote before the series budget, the same code with a budget
# that admits every row of an interval (top_n 1000 per interface and direction keeps
# the addresses; the rest folds into one bounded row per protocol, as the old "other"
# row did). talkers: 1_000_000 would hold every key ever seen in each box's admission
# state (memory and decay time without bound): 20 000 slots are ten intervals of the
# heaviest profile, so every row of an interval still gets in (see README); no
# heavy-hitter floor (min_share 0), which the old collector did not have.
# "new": the collector's defaults.
SCHEMAS: dict[str, dict[str, object]] = {
    "old": {"top_n": 1000,
            "series": {"talkers": 20_000, "admissions_per_hour": 1_000_000,
                       "services": 0, "service_admissions_per_hour": 0,
                       "min_share": 0}},
    "new": {},
}


@dataclass(frozen=True)
class Profile:
    """Traffic of one box per REAL 10-s interval."""

    name: str
    description: str
    peers: int                  # recurring peers (fixed per box), both directions
    services_per_peer: int      # each recurring peer talks on this many services
    new_peers: int              # connections with a new peer per interval, both directions
    pool: int                   # new peers are drawn from a pool this large (0: random)
    scan: int                   # inbound single-packet probes, random source and port
    server_ports: tuple[tuple[str, int, float], ...] = ()   # (proto, port, weight)


PROFILES: dict[str, Profile] = {
    "lab": Profile("lab", "50 fixed peers x 2 services, both directions",
                   peers=50, services_per_peer=2, new_peers=0, pool=0, scan=0),
    "internet": Profile("internet", "300 recurring + 700 new peers per 10 s from a 1 M pool,"
                        " server ports and ephemeral", peers=300, services_per_peer=1,
                        new_peers=700, pool=1_000_000, scan=0),
    "scan": Profile("scan", "20 fixed peers + 2000 probes per 10 s, each a new random "
                    "source and destination port", peers=20, services_per_peer=2,
                    new_peers=0, pool=0, scan=2000),
}
# Services of recurring and new peers: (proto, port, weight); port 0 = both ends ephemeral.
SERVICES = (("tcp", 443, 0.5), ("tcp", 80, 0.12), ("udp", 53, 0.1), ("tcp", 22, 0.08),
            ("tcp", 8086, 0.05), ("tcp", 25, 0.05), ("udp", 0, 0.1))


def box_name(i: int) -> str:
    return f"box{i + 1:03d}"


def config(site: str, box: str, schema: str, interval: float) -> Config:
    """The collector config of one simulated box: defaults (new) or the old schema; the
    interval is the simulated one, so the budget's per-hour rates and half-life hold."""
    data: dict[str, object] = {"site": site, "box": box, "interval": interval,
                               "influxdb": {"url": "http://127.0.0.1:8086",
                                            "database": "sitevis"}}
    data.update(SCHEMAS[schema])
    return parse_config(data, f"<sitegen {schema}>")


def _ip(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def _pool_ip(i: int) -> str:
    return _ip(0x64400000 + i)          # 100.64.0.0/10 holds 4 M


class Box:
    """One simulated box: its peers, its random stream and its persistent budget."""

    def __init__(self, site: str, index: int, profile: Profile, schema: str,
                 interval: float, seed: int = 0) -> None:
        self.name = box_name(index)
        self.profile = profile
        self.cfg = config(site, self.name, schema, interval)
        self.budget: SeriesBudget = new_budget(self.cfg)
        self.scale = interval / REAL_INTERVAL   # recurring bytes: the whole interval's
        self.rng = random.Random(f"{seed}/{profile.name}/{index}")
        self.addr = _ip(0xC0A80000 + index + 1)         # 192.168.0.x: the box
        rng = self.rng
        weights = [w for *_, w in SERVICES]
        self.recurring: list[tuple[str, tuple[tuple[str, int], ...], float]] = []
        for p in range(profile.peers):
            peer = (_pool_ip(rng.randrange(profile.pool)) if profile.pool
                    else _ip(0x0A000000 + (index << 12) + p + 1))      # 10.x: the lab
            services = tuple((proto, port) for proto, port, _ in
                             rng.choices(SERVICES, weights, k=profile.services_per_peer))
            self.recurring.append((peer, services, rng.lognormvariate(11, 1.5)))
        self.weights = weights
        self.folded = 0

    def drain(self, end_ns: int) -> DrainResult:
        """One simulated interval of the profile as the kernel side would drain it."""
        rnd, prof, scale, box = self.rng.random, self.profile, self.scale, self.addr
        flows: dict[FlowKey, FlowCounters] = {}
        inn, out = FlowCounters(), FlowCounters()

        def conn(peer: str, proto: str, port: int, nbytes: int, inbound: bool) -> None:
            # inbound: the peer is the client (its ephemeral port), the box serves
            eph = 32768 + int(rnd() * 32768)
            srv = 32768 + int(rnd() * 32768) if port == 0 else port
            flags = TCP_ACK_PSH if proto == "tcp" else 0
            big = max(60, int(nbytes * 0.8))
            small = max(60, nbytes - big)
            if inbound:
                b_in, b_out, sp, dp = small, big, eph, srv
            else:
                b_in, b_out, sp, dp = big, small, srv, eph
            p_in, p_out = b_in // 900 + 1, b_out // 900 + 1
            flows[FlowKey(IFACE_NAME, INGRESS, IPV4, proto, peer, box, sp, dp)] = \
                FlowCounters(p_in, b_in, flags, end_ns, end_ns)
            flows[FlowKey(IFACE_NAME, EGRESS, IPV4, proto, box, peer, dp, sp)] = \
                FlowCounters(p_out, b_out, flags, end_ns, end_ns)
            inn.packets += p_in
            inn.bytes += b_in
            out.packets += p_out
            out.bytes += b_out

        for i, (peer, services, mean) in enumerate(self.recurring):
            for proto, port in services:
                conn(peer, proto, port, int(self.rng.expovariate(1 / mean) * scale) + 60,
                     inbound=bool(i & 1))
        if prof.new_peers:
            pool = prof.pool
            for proto, port, _ in self.rng.choices(SERVICES, self.weights, k=prof.new_peers):
                conn(_pool_ip(int(rnd() * pool)), proto, port,
                     int(self.rng.lognormvariate(8, 1.5)) + 60, inbound=rnd() < 0.6)
        if prof.scan:
            span = 0xE0000000 - 0x01000000
            for _ in range(prof.scan):
                key = FlowKey(IFACE_NAME, INGRESS, IPV4, "tcp",
                              _ip(0x01000000 + int(rnd() * span)), box,
                              32768 + int(rnd() * 32768), 1 + int(rnd() * 65535))
                flows[key] = FlowCounters(1, 60, TCP_SYN, end_ns, end_ns)
            inn.packets += prof.scan
            inn.bytes += 60 * prof.scan
        return DrainResult(flows=flows, totals={(IFACE_NAME, INGRESS): inn,
                                                (IFACE_NAME, EGRESS): out})

    def points(self, end_ns: int) -> Iterator[Point]:
        """The collector's points of one interval (flow, iface, sitevis_collector)."""
        result = self.drain(end_ns)
        yield from iter_points(result, self.cfg, end_ns, consume=True, budget=self.budget)
        self.folded += self.budget.last.get("rows_folded", 0)


@dataclass
class Batch:
    """The points of one box and interval: raw line protocol, and their 5-minute sums
    for `long` (what the role's continuous queries would make of them)."""

    box: str
    end_ns: int
    raw: bytes
    points: int
    long: bytes
    long_points: int


def long_lines(points: Iterable[Point], bucket_ns: int = LONG_BUCKET_NS) -> list[bytes]:
    """The continuous queries' 5-minute sums of flow and iface, as long's line protocol.

    A raw point at t goes into the bucket starting at floor(t / 5m) (InfluxDB's GROUP BY
    time rule); tags are the role's influxdb_downsample_tags."""
    sums: dict[tuple[str, tuple[str, ...], int], list[int]] = {}
    for measurement, tags, fields, t in points:
        keys = LONG_TAGS.get(measurement)
        if keys is None:
            continue
        k = (measurement, tuple(tags.get(name, "") for name in keys), t - t % bucket_ns)
        have = sums.get(k)
        values = [int(fields[f]) for f in LONG_FIELDS[measurement]]
        if have is None:
            sums[k] = values
        else:
            for i, v in enumerate(values):
                have[i] += v
    out = []
    for (measurement, tag_values, t), total in sums.items():
        tags = {n: v for n, v in zip(LONG_TAGS[measurement], tag_values, strict=True) if v}
        out.append(encode_line(Point(measurement, tags,
                                     dict(zip(LONG_FIELDS[measurement], total, strict=True)),
                                     t)))
    return out


def generate(site: str, boxes: int, profile: str | Profile, start_ns: int, hours: float,
             interval: float = 300.0, *, schema: str = "new", seed: int = 0,
             sims: list[Box] | None = None) -> Iterator[Batch]:
    """Batches in time order, every box once per interval, intervals ending at
    start_ns + k x interval. `sims`: boxes to continue (their budgets), else new ones."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    if sims is None:
        sims = [Box(site, i, prof, schema, interval, seed) for i in range(boxes)]
    step = int(interval * 1e9)
    for k in range(1, round(hours * 3600 / interval) + 1):
        end_ns = start_ns + k * step
        for sim in sims:
            points = list(sim.points(end_ns))
            raw = b"".join(encode_line(p) for p in points)
            long = long_lines(points)
            yield Batch(sim.name, end_ns, raw, len(points), b"".join(long), len(long))


# --- writing ------------------------------------------------------------------------------

@dataclass
class WriteStats:
    points: int = 0             # points sent
    refused: int = 0            # points InfluxDB refused (partial writes' dropped=, 4xx)
    bytes: int = 0              # line-protocol bytes sent
    requests: int = 0
    errors: list[str] = field(default_factory=list)   # first few refusal messages
    seconds: float = 0.0        # wall time spent in POSTs
    server_errors: int = 0      # 5xx answers (each retried)

    def add(self, other: WriteStats) -> None:
        self.points += other.points
        self.refused += other.refused
        self.bytes += other.bytes
        self.requests += other.requests
        self.seconds += other.seconds
        self.server_errors += other.server_errors
        self.errors += other.errors[: max(0, 5 - len(self.errors))]


_DROPPED = re.compile(rb"dropped=(\d+)")
RETRIES = 3


class Writer:
    """POSTs line protocol to /write from a thread, so generating and InfluxDB's work
    overlap; at most `depth` bodies wait. close() waits for the last and returns stats."""

    def __init__(self, url: str, db: str, *, auth: tuple[str, str] | None = None,
                 depth: int = 4, timeout: float = 300.0) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self._conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
        self._db = db
        self._headers = {"Content-Type": "text/plain"}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self.stats: dict[str, WriteStats] = {}
        self._queue: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue(depth)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sitegen-writer", daemon=True)
        self._thread.start()

    def put(self, rp: str, body: bytes, points: int) -> None:
        if self._failure is not None:
            raise RuntimeError(f"writing to InfluxDB failed: {self._failure}")
        if points:
            self._queue.put((rp, body, points))

    def close(self) -> dict[str, WriteStats]:
        self._queue.put(None)
        self._thread.join()
        self._conn.close()
        if self._failure is not None:
            raise RuntimeError(f"writing to InfluxDB failed: {self._failure}")
        return self.stats

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._failure is not None:
                continue
            try:
                self._post(*item)
            except BaseException as err:      # reported by put()/close()
                self._failure = err

    def _post(self, rp: str, body: bytes, points: int) -> None:
        st = self.stats.setdefault(rp, WriteStats())
        st.points += points
        st.bytes += len(body)
        for attempt in range(RETRIES + 1):
            start = time.monotonic()
            self._conn.request("POST", f"/write?db={self._db}&rp={rp}&precision=ns", body,
                               self._headers)
            resp = self._conn.getresponse()
            text = resp.read()
            st.seconds += time.monotonic() - start
            st.requests += 1
            if resp.status < 500:
                break
            # 5xx (influxd's write-timeout: {"error":"timeout"}): the collector retries
            # the same body (writes are idempotent); so do we, and count it.
            st.server_errors += 1
            if len(st.errors) < 5:
                st.errors.append(f"{resp.status}: {text[:200].decode(errors='replace')}")
            if attempt < RETRIES:
                time.sleep(1.0)
        if resp.status == 204:
            return
        if resp.status >= 500:
            st.refused += points            # given up on after RETRIES retries
            return
        found = _DROPPED.search(text)
        st.refused += min(points, int(found[1])) if found else points
        if len(st.errors) < 5:
            st.errors.append(f"{resp.status}: {text[:200].decode(errors='replace')}")


class Batcher:
    """Joins batches into bodies of about `lines` lines per retention policy."""

    def __init__(self, writer: Writer, lines: int = 10_000) -> None:
        self.writer = writer
        self.lines = lines
        self._parts: dict[str, tuple[list[bytes], int]] = {}

    def add(self, rp: str, body: bytes, points: int) -> None:
        parts, n = self._parts.get(rp, ([], 0))
        parts.append(body)
        n += points
        if n >= self.lines:
            self.writer.put(rp, b"".join(parts), n)
            parts, n = [], 0
        self._parts[rp] = (parts, n)

    def flush(self) -> None:
        for rp, (parts, n) in self._parts.items():
            self.writer.put(rp, b"".join(parts), n)
        self._parts.clear()


def fill(url: str, db: str, batches: Iterable[Batch], *, auth: tuple[str, str] | None = None,
         raw_rp: str = "raw", long_rp: str | None = "long") -> dict[str, WriteStats]:
    """Write every batch (raw into raw_rp, the 5-minute sums into long_rp unless None);
    WriteStats per retention policy."""
    writer = Writer(url, db, auth=auth)
    batcher = Batcher(writer)
    try:
        for batch in batches:
            batcher.add(raw_rp, batch.raw, batch.points)
            if long_rp:
                batcher.add(long_rp, batch.long, batch.long_points)
        batcher.flush()
    finally:
        stats = writer.close()
    return stats
