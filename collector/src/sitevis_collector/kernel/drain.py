"""Read everything the kernel gathered since the last interval into a DrainResult.

Exactness (no packet lost or counted twice, and flows = totals in every interval):
- The program counts each packet into the flow table, totals and overflow buckets of
  the current epoch (0/1, read once per packet). drain() makes the other epoch
  current first; FlowProgram.swap_epoch waits for every running program
  (synchronize_rcu), so the old epoch has no writer left, and its flows, totals and
  buckets are read and emptied together at leisure: the same packets, exactly.
- Counters (overflow events, ring buffer losses, ...) are cumulative in the kernel:
  drain() reports the difference to the previous reading.
"""

from __future__ import annotations

import array
import contextlib
import ctypes as ct
import errno
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sitevis_collector.kernel import bpfsys
from sitevis_collector.kernel.program import FlowProgram
from sitevis_collector.kernel.ringbuf import RingBuffer
from sitevis_collector.kernel.structs import (
    CNT_OVERFLOW,
    CNT_RATE_LIMITED,
    CNT_RINGBUF_LOST,
    CNT_TRUNCATED,
    CNT_UNACCOUNTED,
    SampleRaw,
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


def proto_name(l3: int, ipproto: int) -> str:
    if l3 == 0:
        return "eth"
    return _PROTO_NAMES.get(ipproto, f"ip:{ipproto}")


_ZERO10 = bytes(10)


def _address(l3: int, raw) -> str:
    if l3 == 4:
        return socket.inet_ntop(socket.AF_INET, bytes(raw[:4]))
    if l3 == 6:
        return _ipv6(bytes(raw))
    return ""


def _ipv6(raw: bytes) -> str:
    # inet_ntop is ~3x faster than ipaddress and prints the same text, except for
    # IPv4-mapped/-compatible addresses (dotted quad), which keep ipaddress's form.
    if raw[:10] == _ZERO10:
        return str(ipaddress.IPv6Address(raw))
    return socket.inet_ntop(socket.AF_INET6, raw)


def _struct_layout(ctype: Any, wanted: tuple[str, ...]) -> struct.Struct | None:
    """A Struct unpacking the `wanted` fields of a ctypes Structure, in that order.

    Unpacking a whole batch with iter_unpack is several times faster than reading
    each field through ctypes. None when the layout is not plain integers and byte
    arrays in offset order (then the ctypes path is used).
    """
    fields = {name: getattr(ctype, name) for name, *_ in getattr(ctype, "_fields_", ())}
    types = {name: t for name, t, *rest in ctype._fields_ if not rest}
    if any(name not in types for name in wanted):
        return None
    if [f for f in sorted(wanted, key=lambda n: fields[n].offset)] != list(wanted):
        return None
    fmt, pos = ["="], 0
    for name in wanted:
        t, desc = types[name], fields[name]
        if desc.offset < pos:
            return None
        fmt.append(f"{desc.offset - pos}x" if desc.offset > pos else "")
        if (isinstance(t, type) and issubclass(t, ct.Array)
                and t._type_ in (ct.c_ubyte, ct.c_byte, ct.c_char)):
            fmt.append(f"{t._length_}s")
        elif t in _INT_CODES:
            fmt.append(_INT_CODES[t])
        else:
            return None
        pos = desc.offset + desc.size
    fmt.append(f"{ct.sizeof(ctype) - pos}x")
    layout = struct.Struct("".join(fmt))
    return layout if layout.size == ct.sizeof(ctype) else None


# Every ctypes integer type BCC may pick for a field (c_ulonglong is not c_uint64).
_INT_CODES: dict[type, str] = {
    t: {1: "b", 2: "h", 4: "i", 8: "q"}[ct.sizeof(t)].upper() if t(-1).value > 0
    else {1: "b", 2: "h", 4: "i", 8: "q"}[ct.sizeof(t)]
    for t in (ct.c_byte, ct.c_ubyte, ct.c_short, ct.c_ushort, ct.c_int, ct.c_uint,
              ct.c_long, ct.c_ulong, ct.c_longlong, ct.c_ulonglong)
}
_KEY_FIELDS = ("ifindex", "dir", "l3", "ipproto", "ethertype", "vlan", "sport", "dport",
               "src", "dst")
_VALUE_FIELDS = ("packets", "bytes", "first_ns", "last_ns", "tcp_flags")


def batch_pop_raw(table) -> Iterator[tuple[ct.Array, ct.Array, int]]:
    """Yield and delete every entry of a hash map nobody writes any more, as
    (keys, values, count) chunks: ctypes arrays of which the first count are valid.

    Uses BPF_MAP_LOOKUP_AND_DELETE_BATCH in chunks. Raises NotImplementedError
    before yielding anything on kernels without batch support.
    """
    chunk = _BATCH
    token = ct.create_string_buffer(max(8, ct.sizeof(table.Key)))
    first = True
    while True:
        keys = (table.Key * chunk)()
        values = (table.Leaf * chunk)()
        count = ct.c_uint32(chunk)
        res = bpfsys.batch(bpfsys.MAP_LOOKUP_AND_DELETE_BATCH, table.map_fd,
                           None if first else token, token, keys, values, count)
        err = -res if res < 0 else 0
        if count.value:
            yield keys, values, count.value
        if res == 0:
            first = False
            continue
        if err == errno.ENOENT:
            return  # walked the whole table
        if err == errno.ENOSPC and count.value == 0:
            chunk *= 2  # one hash bucket holds more than a chunk
            continue
        if err in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP) and first:
            raise NotImplementedError
        raise OSError(err, f"BPF map batch lookup-and-delete failed: {os.strerror(err)}")


def batch_pop(table) -> Iterator[tuple]:
    """Yield and delete every (key, value) of a hash map nobody writes any more;
    iterate + delete on kernels without batch support."""
    try:
        for keys, values, count in batch_pop_raw(table):
            for i in range(count):
                yield keys[i], values[i]
    except NotImplementedError:
        yield from _iterate_pop(table)


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
    if not isinstance(value, ct.Array):
        return value.packets, value.bytes, value.tcp_flags, value.first_ns, value.last_ns
    return _merge_parts([(p.packets, p.bytes, p.first_ns, p.last_ns, p.tcp_flags)
                         for p in value])


def _merge_parts(parts: list[tuple[int, ...]]) -> tuple[int, int, int, int, int]:
    """Per-CPU parts (packets, bytes, first_ns, last_ns, tcp_flags) -> one flow."""
    packets = size = flags = last = 0
    first = 0
    for p, b, f, ln, t in parts:
        packets += p
        size += b
        flags |= t
        if f and (not first or f < first):
            first = f
        if ln > last:
            last = ln
    return packets, size, flags, first, last


# (ifindex, dir) -> (ifname, direction); (l3, ipproto) -> proto; raw address -> text (v4, v6)
_Caches = tuple[dict[tuple[int, int], tuple[str, str]], dict[tuple[int, int], str],
                dict[bytes, str], dict[bytes, str]]


def _merge_into(c: FlowCounters, packets: int, size: int, flags: int, first: int,
                last: int) -> None:
    """A key seen twice in one drain, e.g. a flow with and without ports 0 from later
    fragments."""
    c.packets += packets
    c.bytes += size
    c.tcp_flags |= flags
    c.first_ns = min(c.first_ns, first)
    c.last_ns = max(c.last_ns, last)


def _add_counters(flows: dict[FlowKey, FlowCounters], fk: FlowKey, packets: int, size: int,
                  flags: int, first: int, last: int) -> None:
    c = flows.get(fk)
    if c is None:
        flows[fk] = FlowCounters(packets, size, flags, first, last)
    else:
        _merge_into(c, packets, size, flags, first, last)


def _take_slot_totals(slots, epoch: int) -> Iterator[tuple[int, int, int, int]]:
    """(ifindex, dir, packets, bytes) of one epoch's half of the per-CPU totals array
    (slot = epoch * half + ifindex * 2 + dir), each slot emptied once read."""
    n = len(slots)
    keys, values, count = (slots.Key * n)(), (slots.Leaf * n)(), ct.c_uint32(n)
    token = ct.c_uint32(0)
    res = bpfsys.batch(bpfsys.MAP_LOOKUP_BATCH, slots.map_fd, None, token, keys, values,
                       count)
    if (res < 0 and res != -errno.ENOENT) or count.value != n:
        raw = b"".join(bytes(slots.getvalue(ct.c_int(i))) for i in range(n))  # no batch
    else:
        raw = bytes(values)
    words = array.array("Q", raw)  # per slot: (packets, bytes) for every possible CPU
    stride = len(words) // n
    half = n // 2
    for i in range(epoch * half, (epoch + 1) * half):
        packets = sum(words[i * stride:(i + 1) * stride:2])
        if packets:
            slots.clearitem(ct.c_int(i))  # nobody writes this epoch any more
            slot = i - epoch * half
            yield slot // 2, slot % 2, packets, sum(words[i * stride + 1:(i + 1) * stride:2])


def _take_epoch(table, epoch: int) -> Iterator[tuple]:
    """(key, packets, bytes) of one epoch's entries of a per-CPU hash, each deleted
    once read (the other epoch's entries, being written now, stay)."""
    for key, value in list(table.items()):
        if key.epoch == epoch:
            with contextlib.suppress(KeyError):
                del table[key]
            yield key, sum(v.packets for v in value), sum(v.bytes for v in value)


class Drainer:
    """Turns the program's maps into one DrainResult per call."""

    def __init__(self, program: FlowProgram) -> None:
        self.program = program
        self.sample_rate = program.settings.sample_rate
        self._prev_counters: list[int] = []
        self._raw_samples: list[bytes] = []
        self._ring: RingBuffer | None = None
        if self.sample_rate and program.ringbuf_fd is not None:
            size = bpfsys.map_info(program.ringbuf_fd).max_entries
            self._ring = RingBuffer(program.ringbuf_fd, size, self._raw_samples.append)

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def drain(self, ifnames: Mapping[int, str]) -> DrainResult:
        """Everything since the previous call; ifnames maps ifindex -> name."""
        name: Callable[[int], str] = lambda idx: ifnames.get(idx) or f"ifindex:{idx}"  # noqa: E731
        to_wall = time.time_ns() - time.monotonic_ns()  # bpf_ktime_get_ns is CLOCK_MONOTONIC
        result = DrainResult()
        epoch, table = self.program.swap_epoch()
        self._drain_flows(result, name, to_wall, table)
        self._drain_totals(result, name, epoch)
        self._drain_overflow(result, name, epoch)
        self._drain_counters(result)
        self._drain_samples(result, name, to_wall)
        return result

    def _drain_flows(self, result: DrainResult, name, to_wall: int, table) -> None:
        key_layout = _struct_layout(table.Key, _KEY_FIELDS)
        percpu = issubclass(table.Leaf, ct.Array)
        value_type = table.Leaf._type_ if percpu else table.Leaf
        value_layout = _struct_layout(value_type, _VALUE_FIELDS)
        # Few distinct interfaces, protocols and addresses: decode each once per drain.
        caches: _Caches = ({}, {}, {}, {})
        try:
            if key_layout is None or value_layout is None:
                raise NotImplementedError
            for keys, values, count in batch_pop_raw(table):
                self._add_batch(result, name, to_wall, key_layout, value_layout,
                                table.Leaf._length_ if percpu else 0, keys, values, count,
                                caches)
        except NotImplementedError:  # no batch support, or a layout struct cannot read
            for key, value in batch_pop(table):
                packets, size, flags, first, last = _merge_flow(value)
                self._add_flow(result, name(key.ifindex), key.dir, key.ethertype,
                               key.l3, key.ipproto, key.src, key.dst, key.sport,
                               key.dport, key.vlan, packets, size, flags, first, last, to_wall)

    @staticmethod
    def _add_flow(result: DrainResult, ifname: str, direction: int, ethertype: int, l3: int,
                  ipproto: int, src, dst, sport: int, dport: int, vlan: int, packets: int,
                  size: int, flags: int, first: int, last: int, to_wall: int) -> None:
        if packets == 0:
            return
        fk = FlowKey(ifname=ifname, direction=DIRECTIONS[direction], ethertype=ethertype,
                     proto=proto_name(l3, ipproto), src=_address(l3, src),
                     dst=_address(l3, dst), sport=sport, dport=dport, vlan=vlan)
        _add_counters(result.flows, fk, packets, size, flags, first + to_wall,
                      last + to_wall)

    @staticmethod
    def _add_batch(result: DrainResult, name, to_wall: int, key_layout: struct.Struct,
                   value_layout: struct.Struct, ncpus: int, keys: ct.Array,
                   values: ct.Array, count: int, caches: _Caches) -> None:
        """Decode one batch of raw flow entries into result.flows (the hot path)."""
        key_bytes = memoryview(keys).cast("B")[:count * key_layout.size]
        value_bytes = memoryview(values).cast("B")[:count * value_layout.size * max(ncpus, 1)]
        # (packets, bytes, first_ns, last_ns, tcp_flags) per key
        merged: Iterator[tuple[int, ...]] = value_layout.iter_unpack(value_bytes)
        if ncpus:  # per-CPU table: ncpus consecutive values per key
            parts = list(merged)
            merged = ((p, b, f, ln, t) for p, b, t, f, ln in
                      (_merge_parts(parts[i:i + ncpus]) for i in range(0, len(parts), ncpus)))
        flows = result.flows
        ifnames, protos, addr4, addr6 = caches
        inet_ntop, af_inet = socket.inet_ntop, socket.AF_INET
        for (ifindex, d, l3, ipproto, ethertype, vlan, sport, dport, src, dst), \
                (packets, size, first, last, flags) in zip(key_layout.iter_unpack(key_bytes),
                                                          merged, strict=True):
            if packets == 0:
                continue
            where = ifnames.get((ifindex, d))
            if where is None:
                where = ifnames[(ifindex, d)] = (name(ifindex), DIRECTIONS[d])
            proto = protos.get((l3, ipproto))
            if proto is None:
                proto = protos[(l3, ipproto)] = proto_name(l3, ipproto)
            if l3 == 4:
                s = addr4.get(src)
                if s is None:
                    s = addr4[src] = inet_ntop(af_inet, src[:4])
                t = addr4.get(dst)
                if t is None:
                    t = addr4[dst] = inet_ntop(af_inet, dst[:4])
            elif l3 == 6:
                s = addr6.get(src)
                if s is None:
                    s = addr6[src] = _ipv6(src)
                t = addr6.get(dst)
                if t is None:
                    t = addr6[dst] = _ipv6(dst)
            else:
                s = t = ""
            fk = FlowKey(where[0], where[1], ethertype, proto, s, t, sport, dport, vlan)
            c = flows.get(fk)
            if c is None:
                flows[fk] = FlowCounters(packets, size, flags, first + to_wall, last + to_wall)
            else:
                _merge_into(c, packets, size, flags, first + to_wall, last + to_wall)

    def _drain_totals(self, result: DrainResult, name, epoch: int) -> None:
        totals = ((key.ifindex, key.dir, packets, size) for key, packets, size
                  in _take_epoch(self.program.maps["totals"], epoch))
        slots = _take_slot_totals(self.program.maps["totals_slots"], epoch)
        for ifindex, d, packets, size in (*totals, *slots):
            c = result.totals.setdefault((name(ifindex), DIRECTIONS[d]), FlowCounters())
            c.packets += packets
            c.bytes += size

    def _drain_overflow(self, result: DrainResult, name, epoch: int) -> None:
        for key, packets, size in _take_epoch(self.program.maps["overflow"], epoch):
            k = (name(key.ifindex), DIRECTIONS[key.dir], proto_name(key.l3, key.ipproto),
                 key.ethertype)
            c = result.overflow.setdefault(k, FlowCounters())
            c.packets += packets
            c.bytes += size

    def _drain_counters(self, result: DrainResult) -> None:
        table = self.program.maps["counters"]
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
        if self._ring is None:
            return
        self._ring.consume()  # non-blocking: whatever is there now
        raw = self._raw_samples[:]
        self._raw_samples.clear()
        for blob in raw:
            s = SampleRaw.from_buffer_copy(blob[:ct.sizeof(SampleRaw)])
            k = s.key
            result.samples.append(PacketSample(
                ifname=name(k.ifindex), direction=DIRECTIONS[k.dir],
                proto=proto_name(k.l3, k.ipproto), src=_address(k.l3, k.src),
                dst=_address(k.l3, k.dst), sport=k.sport, dport=k.dport,
                length=s.length, ttl=s.ttl, tcp_flags=s.tcp_flags,
                sample_rate=self.sample_rate, timestamp_ns=s.ts_ns + to_wall,
            ))
