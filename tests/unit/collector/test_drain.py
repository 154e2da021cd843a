"""Decoding drained flow batches: the struct fast path against the ctypes path."""

from __future__ import annotations

import ctypes as ct
import ipaddress

import pytest
from sitevis_collector.kernel import drain
from sitevis_collector.kernel.structs import FlowKeyRaw, FlowValRaw
from sitevis_collector.records import DrainResult

Value = FlowValRaw

ENTRIES = [  # (l3, ipproto, ethertype, src, dst, sport, dport, vlan)
    (4, 17, 0x0800, "198.18.0.1", "198.18.0.2", 4000, 53, 0),
    (4, 6, 0x0800, "198.18.0.1", "198.18.0.2", 0, 0, 7),
    (6, 58, 0x86DD, "fe80::1", "ff02::1:ff00:1", 0, 0, 0),
    (6, 6, 0x86DD, "::ffff:198.18.0.1", "::198.18.0.2", 443, 51000, 0),
    (6, 17, 0x86DD, "2001:db8::", "2001:db8:0:1::1", 1, 2, 0),
    (0, 0, 0x0806, "", "", 0, 0, 0),
    (4, 47, 0x0800, "198.18.0.3", "198.18.0.4", 0, 0, 0),
]


def raw_keys() -> ct.Array:
    keys = (FlowKeyRaw * len(ENTRIES))()
    for k, (l3, ipproto, ethertype, src, dst, sport, dport, vlan) in zip(keys, ENTRIES,
                                                                          strict=True):
        k.ifindex, k.dir, k.l3, k.ipproto = 3, 1, l3, ipproto
        k.ethertype, k.vlan, k.sport, k.dport = ethertype, vlan, sport, dport
        for field, text in (("src", src), ("dst", dst)):
            if text:
                packed = ipaddress.ip_address(text).packed
                ct.memmove(getattr(k, field), packed, len(packed))
    return keys


def decode_both(values: ct.Array, ncpus: int) -> tuple[DrainResult, DrainResult]:
    keys = raw_keys()
    leaf = Value * ncpus if ncpus else Value
    fast, slow = DrainResult(), DrainResult()
    name = {3: "veth0"}.__getitem__
    key_layout = drain._struct_layout(FlowKeyRaw, drain._KEY_FIELDS)
    value_layout = drain._struct_layout(Value, drain._VALUE_FIELDS)
    assert key_layout is not None and value_layout is not None
    drain.Drainer._add_batch(fast, name, 1000, key_layout, value_layout, ncpus, keys, values,
                             len(ENTRIES), ({}, {}, {}, {}))
    for i, key in enumerate(keys):
        value = leaf.from_buffer_copy(bytes(values)[i * ct.sizeof(leaf):][:ct.sizeof(leaf)])
        packets, size, flags, first, last = drain._merge_flow(value)
        drain.Drainer._add_flow(slow, name(key.ifindex), key.dir, key.ethertype, key.l3,
                                key.ipproto, key.src, key.dst, key.sport, key.dport,
                                key.vlan, packets, size, flags, first, last, 1000)
    return fast, slow


def test_shared_table_batches_decode_like_the_ctypes_path():
    values = (Value * len(ENTRIES))(*[Value(i + 1, 60 * i, 10 + i, 20 + i, i)
                                      for i in range(len(ENTRIES))])
    values[0].packets = 0  # an entry without packets is not a flow
    fast, slow = decode_both(values, 0)
    assert fast.flows == slow.flows and len(fast.flows) == len(ENTRIES) - 1
    texts = {(k.src, k.dst) for k in fast.flows}
    assert ("::ffff:c612:1", "::c612:2") in texts  # ipaddress's form, not a dotted quad
    assert ("2001:db8::", "2001:db8:0:1::1") in texts and ("", "") in texts


@pytest.mark.parametrize("ncpus", [1, 3])
def test_per_cpu_batches_merge_like_the_ctypes_path(ncpus):
    values = (Value * (len(ENTRIES) * ncpus))()
    for i in range(len(values)):
        first = 0 if i % 3 == 0 else 100 + i  # a CPU that never saw the flow has 0
        values[i] = Value(i % 2, 60 * (i % 2), first, 200 + i, 1 << (i % 6))
    fast, slow = decode_both(values, ncpus)
    assert fast.flows == slow.flows and fast.flows


def test_layouts_follow_the_structs_of_sitevis_c():
    layout = drain._struct_layout(FlowKeyRaw, drain._KEY_FIELDS)
    assert layout is not None and layout.size == ct.sizeof(FlowKeyRaw)
    assert drain._struct_layout(Value, ("packets", "missing")) is None
