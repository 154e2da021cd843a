"""The collector's side of the kernel<->Python contract: ctypes mirrors of the structs
in bpf/sitevis_types.h (keys and values of the program's maps, the ring buffer record)
and its counter indices. Kept in step by hand, and checked against what BCC built at
every load (layout.py): a field moved, renamed or resized is a one-line error.
"""

from __future__ import annotations

import ctypes as ct


class FlowKeyRaw(ct.Structure):
    """struct flow_key (48 bytes)."""

    _fields_ = [
        ("ifindex", ct.c_uint32), ("dir", ct.c_uint8), ("l3", ct.c_uint8),
        ("ipproto", ct.c_uint8), ("has_ports", ct.c_uint8), ("ethertype", ct.c_uint16),
        ("vlan", ct.c_uint16), ("sport", ct.c_uint16), ("dport", ct.c_uint16),
        ("src", ct.c_uint8 * 16), ("dst", ct.c_uint8 * 16),
    ]


class FlowValRaw(ct.Structure):
    """struct flow_val (40 bytes)."""

    _fields_ = [("packets", ct.c_uint64), ("bytes", ct.c_uint64), ("first_ns", ct.c_uint64),
                ("last_ns", ct.c_uint64), ("tcp_flags", ct.c_uint64)]


class OverflowKeyRaw(ct.Structure):
    """struct ovf_key (12 bytes)."""

    _fields_ = [("ifindex", ct.c_uint32), ("dir", ct.c_uint8), ("l3", ct.c_uint8),
                ("ipproto", ct.c_uint8), ("epoch", ct.c_uint8), ("ethertype", ct.c_uint16),
                ("pad2", ct.c_uint16)]


class TotalKeyRaw(ct.Structure):
    """struct total_key (8 bytes)."""

    _fields_ = [("ifindex", ct.c_uint32), ("dir", ct.c_uint16), ("epoch", ct.c_uint16)]


class CountsRaw(ct.Structure):
    """struct counts (16 bytes)."""

    _fields_ = [("packets", ct.c_uint64), ("bytes", ct.c_uint64)]


class SampleRaw(ct.Structure):
    """struct sample (64 bytes): one ring buffer record."""

    _fields_ = [
        ("key", FlowKeyRaw), ("ts_ns", ct.c_uint64), ("length", ct.c_uint32),
        ("ttl", ct.c_uint8), ("tcp_flags", ct.c_uint8), ("pad", ct.c_uint16),
    ]


class BucketRaw(ct.Structure):
    """struct bucket (24 bytes): the per-CPU sampling token bucket."""

    _fields_ = [("budget_ns", ct.c_uint64), ("last_ns", ct.c_uint64), ("rng", ct.c_uint64)]


# name -> (key type, value type) of every map the collector reads; the ring buffer and
# the map-in-map have no typed values.
MAP_TYPES: dict[str, tuple[type, type]] = {
    "flows_a": (FlowKeyRaw, FlowValRaw),
    "flows_b": (FlowKeyRaw, FlowValRaw),
    "active_flows": (ct.c_int, ct.c_int),
    "current_epoch": (ct.c_int, ct.c_uint32),
    "totals_slots": (ct.c_int, CountsRaw),
    "totals": (TotalKeyRaw, CountsRaw),
    "overflow": (OverflowKeyRaw, CountsRaw),
    "counters": (ct.c_int, ct.c_uint64),
    "sample_bucket": (ct.c_int, BucketRaw),
}
RINGBUF_MAP = "samples"

# Indices into the per-CPU `counters` array (CNT_* in bpf/sitevis_types.h).
COUNTERS = {"CNT_OVERFLOW": 0, "CNT_RINGBUF_LOST": 1, "CNT_RATE_LIMITED": 2,
            "CNT_TRUNCATED": 3, "CNT_SAMPLED": 4, "CNT_UNACCOUNTED": 5}
CNT_OVERFLOW = COUNTERS["CNT_OVERFLOW"]
CNT_RINGBUF_LOST = COUNTERS["CNT_RINGBUF_LOST"]
CNT_RATE_LIMITED = COUNTERS["CNT_RATE_LIMITED"]
CNT_TRUNCATED = COUNTERS["CNT_TRUNCATED"]
CNT_UNACCOUNTED = COUNTERS["CNT_UNACCOUNTED"]
