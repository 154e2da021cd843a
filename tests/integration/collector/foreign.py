"""Somebody else's cls_bpf filters, to check that ours coexist with them."""

from __future__ import annotations

import contextlib
import ctypes as ct

from tests.harness.netns import Host

PARENT = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
FOREIGN_PRIO = 1
FOREIGN_HANDLE = 7

SOURCE = """
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>

BPF_ARRAY(seen, u64, 1);

// Counts every packet and lets it continue to the next filter.
int foreign_count(struct __sk_buff *skb)
{
    int zero = 0;
    u64 *n = seen.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return TC_ACT_UNSPEC;
}

// Drops every packet (what a firewall would do to some).
int foreign_drop(struct __sk_buff *skb)
{
    return TC_ACT_SHOT;
}

// Moves the packet's VLAN into skb->vlan_tci (as a VLAN device on a NIC with
// tag offload would), then lets it continue.
int foreign_vlan_push(struct __sk_buff *skb)
{
    bpf_skb_vlan_push(skb, htons(ETH_P_8021Q), VLAN_ID);
    return TC_ACT_UNSPEC;
}
"""


class ForeignFilter:
    """A BCC program of the test's own on one hook of host's interface."""

    def __init__(self, host: Host, ifindex: int, direction: str, func: str = "foreign_count",
                 vlan_id: int = 100, prio: int = FOREIGN_PRIO,
                 handle: int = FOREIGN_HANDLE) -> None:
        from bcc import BPF
        from pyroute2 import NetNS

        self.bpf = BPF(text=SOURCE.encode(), cflags=[f"-DVLAN_ID={vlan_id}"])
        fn = self.bpf.load_func(func.encode(), BPF.SCHED_CLS)
        self.ns = NetNS(host.netns)
        self.ifindex, self.parent = ifindex, PARENT[direction]
        self.prio, self.handle = prio, handle
        if not any(q.get_attr("TCA_KIND") == "clsact" for q in self.ns.get_qdiscs(ifindex)):
            self.ns.tc("add", "clsact", ifindex)
        self.ns.tc("add-filter", "bpf", ifindex, handle, fd=fn.fd, name="foreign",
                   parent=self.parent, prio=prio, classid=1, direct_action=True)

    @property
    def count(self) -> int:
        return self.bpf[b"seen"][ct.c_int(0)].value

    def present(self) -> bool:
        return any(m["handle"] == self.handle
                   for m in self.ns.get_filters(index=self.ifindex, parent=self.parent))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the namespace may be gone already
            self.ns.tc("del-filter", "bpf", self.ifindex, self.handle, parent=self.parent,
                       prio=self.prio)
        self.ns.close()
        self.bpf.cleanup()


class ForeignTcx:
    """A BCC program of the test's own on host's tcx hook, as a BPF link (first in the
    chain with first=True, else last)."""

    def __init__(self, host: Host, ifindex: int, direction: str, func: str = "foreign_count",
                 first: bool = False) -> None:
        from bcc import BPF
        from sitevis_collector.hooks.tcx import link

        self.bpf = BPF(text=SOURCE.encode(), cflags=["-DVLAN_ID=100"])
        fd = self.bpf.load_func(func.encode(), BPF.SCHED_CLS).fd
        self.link = link(fd, ifindex, direction, host.netns, first=first)

    @property
    def count(self) -> int:
        return self.bpf[b"seen"][ct.c_int(0)].value

    def close(self) -> None:
        import os

        os.close(self.link)
        self.bpf.cleanup()
