"""Coexistence on the TC/XDP hooks: foreign filters, stale filters after SIGKILL.

clsact filters (tc_attach: clsact, and kernels without tcx) here; tcx links in
test_tcx_hooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sitevis_collector.errors import KernelError
from sitevis_collector.hooks import hooks_for
from sitevis_collector.hooks.clsact import TC_HANDLE, TC_PRIORITY
from sitevis_collector.kernel.program import FlowProgram, KernelSettings
from sitevis_collector.records import INGRESS

from tests.harness.netns import Host, HostPair
from tests.integration.collector.foreign import ForeignFilter
from tests.integration.collector.kernel_kit import (
    attach_then_sigkill,
    ifindex,
    observed,
    quiet,
    send_udp,
    settle,
    tc_filters,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def quiet_pair(bcc_ready, host_pair: HostPair) -> Iterator[HostPair]:
    quiet(host_pair)
    yield host_pair


def _has_clsact(host: Host) -> bool:
    return "clsact" in host.exec("tc", "qdisc", "show", "dev", host.ifname).stdout


def test_foreign_filters_before_and_after_ours_keep_counting(quiet_pair: HostPair):
    """Ours returns TC_ACT_UNSPEC: a filter after it still sees every packet."""
    right = quiet_pair.right
    before = ForeignFilter(right, ifindex(right), "ingress")  # it created clsact
    after = ForeignFilter(right, ifindex(right), "ingress", prio=TC_PRIORITY + 6, handle=8)
    try:
        with observed(right, tc_attach="clsact") as ours:
            ours.drain()
            send_udp(quiet_pair.left, 40)
            assert ours.ingress_packets() == 40
            assert (before.count, after.count) == (40, 40)
            assert "sitevis_ingress" in tc_filters(right, "ingress")
        # Ours is gone, theirs and their clsact stay and keep counting.
        assert "sitevis" not in tc_filters(right, "ingress") + tc_filters(right, "egress")
        assert before.present() and after.present() and _has_clsact(right)
        send_udp(quiet_pair.left, 7)
        assert (before.count, after.count) == (47, 47)
    finally:
        before.close()
        after.close()


def test_clsact_we_created_goes_with_us_unless_someone_else_uses_it(quiet_pair: HostPair):
    right = quiet_pair.right
    assert not _has_clsact(right)
    with observed(right, tc_attach="clsact"):  # alone: the clsact we created leaves with us
        assert _has_clsact(right)
    assert not _has_clsact(right)
    with observed(right, tc_attach="clsact"):
        foreign = ForeignFilter(right, ifindex(right), "egress")  # joins our clsact
    try:
        assert _has_clsact(right) and foreign.present()
        right.exec("python3", "-c", "import socket; s = socket.socket(2, 2); "
                   f"[s.sendto(b'x', ('{quiet_pair.left.ip}', 9)) for _ in range(5)]")
        settle()
        assert foreign.count == 5
    finally:
        foreign.close()



def test_remove_stale_after_sigkill_leaves_foreign_filters(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    foreign = ForeignFilter(right, idx, "ingress")
    attach_then_sigkill(right, idx, "tc", "clsact")
    try:
        # The kernel keeps a killed process's filters: they are stale now.
        assert "sitevis_ingress" in tc_filters(right, "ingress")
        assert "sitevis_egress" in tc_filters(right, "egress")
        program = FlowProgram(KernelSettings(table_size=64))
        hooks = hooks_for(program, right.netns, "clsact")
        try:
            assert hooks.remove_stale(idx) == 2
            assert hooks.remove_stale(idx) == 0
        finally:
            hooks.close()
            program.close()
        assert "sitevis" not in tc_filters(right, "ingress") + tc_filters(right, "egress")
        assert foreign.present()
        send_udp(quiet_pair.left, 9)
        assert foreign.count == 9
    finally:
        foreign.close()


def test_attach_refuses_to_replace_a_foreign_filter_on_our_priority_and_handle(
        quiet_pair: HostPair):
    from bcc import BPF
    from pyroute2 import NetNS

    right = quiet_pair.right
    idx = ifindex(right)
    other = BPF(text=b"int other(struct __sk_buff *skb) { return -1; }")
    fn = other.load_func(b"other", BPF.SCHED_CLS)
    with NetNS(right.netns) as ns:
        ns.tc("add", "clsact", idx)
        ns.tc("add-filter", "bpf", idx, TC_HANDLE, fd=fn.fd, name="someone_else",
              parent=0xFFFFFFF2, prio=TC_PRIORITY, classid=1, direct_action=True)
    program = FlowProgram(KernelSettings(table_size=64))
    hooks = hooks_for(program, right.netns, "clsact")
    try:
        with pytest.raises(KernelError, match="foreign TC filter"):
            hooks.attach(idx)
        assert hooks.remove_stale(idx) == 0
        assert "someone_else" in tc_filters(right, "ingress")
    finally:
        hooks.close()
        program.close()
        other.cleanup()


def test_xdp_stale_program_removed_after_sigkill(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    attach_then_sigkill(right, idx, "xdp", "auto")
    assert "prog/xdp" in right.exec("ip", "link", "show", right.ifname).stdout
    program = FlowProgram(KernelSettings(hook="xdp", table_size=64))
    hooks = hooks_for(program, right.netns)
    try:
        assert hooks.remove_stale(idx) == 1
        assert "prog/xdp" not in right.exec("ip", "link", "show", right.ifname).stdout
        assert hooks.remove_stale(idx) == 0
    finally:
        hooks.close()
    with observed(right, program=program) as ours:
        ours.drain()
        send_udp(quiet_pair.left, 11)
        assert ours.ingress_packets() == 11
    assert "prog/xdp" not in right.exec("ip", "link", "show", right.ifname).stdout
    program.close()


def test_a_detached_interface_leaves_nothing_in_the_maps_after_its_last_drain(
        quiet_pair: HostPair):
    """Totals are emptied every drain (epochs): a box whose interfaces come and go for
    months keeps no entry per interface ever seen."""
    right = quiet_pair.right
    idx = ifindex(right)
    program = FlowProgram(KernelSettings(table_size=64))
    try:
        with observed(right, program=program) as ours:
            ours.drain()
            send_udp(quiet_pair.left, 5)
        # Detached: the final packets are still reported once, then nothing is kept.
        last = ours.drain()
        assert last.totals[("veth0", INGRESS)].packets == 5
        assert [k for k in program.maps["totals"] if k.ifindex == idx] == []
        assert ours.drain().totals == {}
        with observed(right, program=program) as again:
            again.drainer = ours.drainer  # the same collector run, attached anew
            send_udp(quiet_pair.left, 3)
            assert again.ingress_packets() == 3
    finally:
        program.close()


FOREIGN_XDP = b"int someone_elses_xdp(struct xdp_md *ctx) { return XDP_PASS; }"


def _force_xdp(host: Host, ifindex_: int, fd: int) -> None:
    """Set an XDP program the way any other tool would: no flags, replacing anything."""
    from pyroute2 import NetNS

    with NetNS(host.netns) as ns:
        ns.link("set", index=ifindex_, xdp_fd=fd)


def test_xdp_never_replaces_or_removes_a_foreign_program(quiet_pair: HostPair):
    from bcc import BPF

    right = quiet_pair.right
    idx = ifindex(right)
    other = BPF(text=FOREIGN_XDP)
    foreign_fd = other.load_func(b"someone_elses_xdp", BPF.XDP).fd
    program = FlowProgram(KernelSettings(hook="xdp", table_size=64))
    hooks = hooks_for(program, right.netns)
    try:
        _force_xdp(right, idx, foreign_fd)
        foreign_id = hooks.attached_prog_id(idx)
        with pytest.raises(KernelError, match="foreign XDP program"):
            hooks.attach(idx)
        assert hooks.remove_stale(idx) == 0
        _force_xdp(right, idx, -1)

        # Ours attached; then someone else swaps in theirs behind our back. A detach
        # that still believes ours is there (the state it read a moment earlier) must
        # not remove theirs: the kernel compares the expected program atomically.
        hooks.attach(idx)
        ours_id = hooks.attached_prog_id(idx)
        assert ours_id and ours_id != foreign_id
        _force_xdp(right, idx, foreign_fd)
        real_reader = hooks.attached_prog_id
        hooks.attached_prog_id = lambda _idx: ours_id  # the stale view
        hooks.detach(idx)
        hooks.attached_prog_id = real_reader
        assert hooks.attached_prog_id(idx) == foreign_id
    finally:
        _force_xdp(right, idx, -1)
        hooks.close()
        program.close()
        other.cleanup()
