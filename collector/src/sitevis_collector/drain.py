"""Read everything the kernel gathered since the last interval into a DrainResult.

Exactness across intervals (no packet lost or counted twice between read and delete):
- Flows: the program writes into one of two tables, chosen through a one-slot
  map-in-map. drain() points it at the other (empty) table first; that update waits
  for every running program (synchronize_rcu), so the old table has no writer left
  and can be read and emptied with batch lookup-and-delete at leisure.
- Totals, overflow buckets and counters are cumulative in the kernel and never
  reset while attached: drain() reports the difference to the previous reading.
  A reset would race with the program (a packet added between read and reset is
  lost); a difference cannot.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import errno
import ipaddress
import os
import time
from collections.abc import Callable, Iterator, Mapping

from sitevis_collector.kernel import (
    CNT_OVERFLOW,
    CNT_RATE_LIMITED,
    CNT_RINGBUF_LOST,
    CNT_TRUNCATED,
    CNT_UNACCOUNTED,
    FlowProgram,
)
from sitevis_collector.records import (
    EGRESS,
    INGRESS,
    DrainResult,
    FlowCounters,
    FlowKey,
    PacketSample,
)

DIRECTIONS = (INGRESS, EGRESS)  # index = dir field in the kernel
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
_BATCH = 4096


class _RawKey(ct.Structure):
    """struct flow_key in bpf/sitevis.c (48 bytes)."""

    _fields_ = [
        ("ifindex", ct.c_uint32), ("dir", ct.c_uint8), ("l3", ct.c_uint8),
        ("ipproto", ct.c_uint8), ("has_ports", ct.c_uint8), ("ethertype", ct.c_uint16),
        ("vlan", ct.c_uint16), ("sport", ct.c_uint16), ("dport", ct.c_uint16),
        ("src", ct.c_uint8 * 16), ("dst", ct.c_uint8 * 16),
    ]


class _RawSample(ct.Structure):
    """struct sample in bpf/sitevis.c (64 bytes)."""

    _fields_ = [
        ("key", _RawKey), ("ts_ns", ct.c_uint64), ("length", ct.c_uint32),
        ("ttl", ct.c_uint8), ("tcp_flags", ct.c_uint8), ("pad", ct.c_uint16),
    ]


def proto_name(l3: int, ipproto: int) -> str:
    if l3 == 0:
        return "eth"
    return _PROTO_NAMES.get(ipproto, f"ip:{ipproto}")


def _address(l3: int, raw) -> str:
    if l3 == 4:
        return str(ipaddress.IPv4Address(bytes(raw[:4])))
    if l3 == 6:
        return str(ipaddress.IPv6Address(bytes(raw)))
    return ""


def batch_pop(table) -> Iterator[tuple]:
    """Yield and delete every (key, value) of a BCC hash table nobody writes any more.

    Uses BPF_MAP_LOOKUP_AND_DELETE_BATCH in chunks (BCC 0.26's own helper passes
    one variable as both count and batch token, so it is not used); falls back to
    iterate + delete on kernels without batch support.
    """
    from bcc.libbcc import lib

    chunk = _BATCH
    token = ct.create_string_buffer(max(8, ct.sizeof(table.Key)))
    first = True
    while True:
        keys = (table.Key * chunk)()
        values = (table.Leaf * chunk)()
        count = ct.c_uint32(chunk)
        res = lib.bpf_lookup_and_delete_batch(
            table.map_fd, None if first else ct.cast(token, ct.POINTER(ct.c_uint32)),
            ct.cast(token, ct.POINTER(ct.c_uint32)), keys, values, ct.byref(count))
        err = ct.get_errno() if res != 0 else 0
        for i in range(count.value):
            yield keys[i], values[i]
        if res == 0:
            first = False
            continue
        if err == errno.ENOENT:
            return  # walked the whole table
        if err == errno.ENOSPC and count.value == 0:
            chunk *= 2  # one hash bucket holds more than a chunk
            continue
        if err in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP) and first:
            yield from _iterate_pop(table)
            return
        raise OSError(err, f"BPF map batch lookup-and-delete failed: {os.strerror(err)}")


def _iterate_pop(table) -> Iterator[tuple]:
    for key in list(table.keys()):
        try:
            value = table[key]
        except KeyError:
            continue
        del table[key]
        yield key, value


def _merge_flow(value) -> tuple[int, int, int, int, int]:
    """Sum a flow value, per-CPU (an array) or shared (one struct)."""
    parts = value if isinstance(value, ct.Array) else (value,)
    packets = sum(p.packets for p in parts)
    size = sum(p.bytes for p in parts)
    flags = 0
    for p in parts:
        flags |= p.tcp_flags
    firsts = [p.first_ns for p in parts if p.first_ns]
    last = max(p.last_ns for p in parts)
    return packets, size, flags, min(firsts) if firsts else 0, last


class Drainer:
    """Turns the program's maps into one DrainResult per call."""

    def __init__(self, program: FlowProgram) -> None:
        self.program = program
        self.sample_rate = program.settings.sample_rate
        self._prev_totals: dict[tuple[int, int], tuple[int, int]] = {}
        self._prev_overflow: dict[tuple, tuple[int, int]] = {}
        self._prev_counters: list[int] = []
        self._forget: set[int] = set()
        self._raw_samples: list[bytes] = []
        if self.sample_rate:
            program.bpf[b"samples"].open_ring_buffer(self._on_sample)

    def _on_sample(self, _ctx, data, size) -> int:
        self._raw_samples.append(ct.string_at(data, size))
        return 0

    def forget(self, ifindex: int) -> None:
        """Drop an interface's cumulative entries after the next drain (call after detach)."""
        self._forget.add(ifindex)

    def drain(self, ifnames: Mapping[int, str]) -> DrainResult:
        """Everything since the previous call; ifnames maps ifindex -> name."""
        name: Callable[[int], str] = lambda idx: ifnames.get(idx) or f"ifindex:{idx}"  # noqa: E731
        to_wall = time.time_ns() - time.monotonic_ns()  # bpf_ktime_get_ns is CLOCK_MONOTONIC
        result = DrainResult()
        self._drain_flows(result, name, to_wall)
        self._drain_totals(result, name)
        self._drain_overflow(result, name)
        self._drain_counters(result)
        self._drain_samples(result, name, to_wall)
        self._apply_forget()
        return result

    def _drain_flows(self, result: DrainResult, name, to_wall: int) -> None:
        table = self.program.swap_flows()
        for key, value in batch_pop(table):
            packets, size, flags, first, last = _merge_flow(value)
            if packets == 0:
                continue
            fk = FlowKey(
                ifname=name(key.ifindex), direction=DIRECTIONS[key.dir],
                ethertype=key.ethertype, proto=proto_name(key.l3, key.ipproto),
                src=_address(key.l3, key.src), dst=_address(key.l3, key.dst),
                sport=key.sport, dport=key.dport, vlan=key.vlan,
            )
            c = result.flows.get(fk)
            if c is None:
                result.flows[fk] = FlowCounters(packets, size, flags, first + to_wall,
                                                last + to_wall)
            else:  # e.g. a flow seen with and without ports 0 from later fragments
                c.packets += packets
                c.bytes += size
                c.tcp_flags |= flags
                c.first_ns = min(c.first_ns, first + to_wall)
                c.last_ns = max(c.last_ns, last + to_wall)

    @staticmethod
    def _cumulative(table) -> dict:
        out = {}
        for key, value in table.items():
            out[bytes(key)] = (key, sum(v.packets for v in value), sum(v.bytes for v in value))
        return out

    @staticmethod
    def _delta(now: dict, prev: dict) -> Iterator[tuple]:
        for raw, (key, packets, size) in now.items():
            old_packets, old_bytes = prev.get(raw, (0, 0))
            prev[raw] = (packets, size)
            if packets != old_packets or size != old_bytes:
                yield key, packets - old_packets, size - old_bytes

    def _drain_totals(self, result: DrainResult, name) -> None:
        now = self._cumulative(self.program.bpf[b"totals"])
        for key, packets, size in self._delta(now, self._prev_totals):
            k = (name(key.ifindex), DIRECTIONS[key.dir])
            c = result.totals.setdefault(k, FlowCounters())
            c.packets += packets
            c.bytes += size

    def _drain_overflow(self, result: DrainResult, name) -> None:
        now = self._cumulative(self.program.bpf[b"overflow"])
        for key, packets, size in self._delta(now, self._prev_overflow):
            k = (name(key.ifindex), DIRECTIONS[key.dir], proto_name(key.l3, key.ipproto))
            c = result.overflow.setdefault(k, FlowCounters())
            c.packets += packets
            c.bytes += size

    def _drain_counters(self, result: DrainResult) -> None:
        table = self.program.bpf[b"counters"]
        now = [sum(table[ct.c_int(i)]) for i in range(len(table))]
        prev = self._prev_counters or [0] * len(now)
        self._prev_counters = now
        delta = [a - b for a, b in zip(now, prev, strict=True)]
        result.overflow_events = delta[CNT_OVERFLOW]
        result.ringbuf_lost = delta[CNT_RINGBUF_LOST]
        result.samples_rate_limited = delta[CNT_RATE_LIMITED]
        result.truncated = delta[CNT_TRUNCATED]
        result.unaccounted = delta[CNT_UNACCOUNTED]

    def _drain_samples(self, result: DrainResult, name, to_wall: int) -> None:
        if not self.sample_rate:
            return
        self.program.bpf.ring_buffer_consume()  # non-blocking: whatever is there now
        raw, self._raw_samples = self._raw_samples, []
        for blob in raw:
            s = _RawSample.from_buffer_copy(blob[:ct.sizeof(_RawSample)])
            k = s.key
            result.samples.append(PacketSample(
                ifname=name(k.ifindex), direction=DIRECTIONS[k.dir],
                proto=proto_name(k.l3, k.ipproto), src=_address(k.l3, k.src),
                dst=_address(k.l3, k.dst), sport=k.sport, dport=k.dport,
                length=s.length, ttl=s.ttl, tcp_flags=s.tcp_flags,
                sample_rate=self.sample_rate, timestamp_ns=s.ts_ns + to_wall,
            ))

    def _apply_forget(self) -> None:
        if not self._forget:
            return
        for table, prev in ((self.program.bpf[b"totals"], self._prev_totals),
                            (self.program.bpf[b"overflow"], self._prev_overflow)):
            for key in list(table.keys()):
                if key.ifindex in self._forget:
                    prev.pop(bytes(key), None)
                    with contextlib.suppress(KeyError):
                        del table[key]
        self._forget.clear()
