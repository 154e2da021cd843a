"""ctypes mirrors of the structs in bpf/sitevis.c (keys and values of its maps).

Kept in step with the C source by hand; maps.BpfMap checks the sizes the kernel reports
against these when the maps are opened.
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
