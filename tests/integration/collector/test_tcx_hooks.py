"""tcx links (the default where the kernel has them, >= 6.6): first in the chain,
every packet handed on, nothing left behind by a killed collector, leftovers of
other holders and of clsact mode removed, a link detached by someone else put back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from sitevis_collector.hooks import hooks_for
from sitevis_collector.hooks.tcx import TcxHooks, chain, tcx_available
from sitevis_collector.kernel import bpfsys
from sitevis_collector.kernel.program import FlowProgram, KernelSettings
from sitevis_collector.records import EGRESS, INGRESS

from tests.harness.netns import Host, HostPair
from tests.harness.tools import tool
from tests.integration.collector.foreign import ForeignFilter, ForeignTcx
from tests.integration.collector.kernel_kit import (
    attach_then_sigkill,
    attached_child,
    ifindex,
    observed,
    quiet,
    send_udp,
    tc_filters,
)


@pytest.fixture
def quiet_pair(bcc_ready, host_pair: HostPair) -> Iterator[HostPair]:
    if not tcx_available():
        pytest.skip("this kernel has no tcx hooks (Linux < 6.6): clsact mode is used")
    quiet(host_pair)
    yield host_pair


def _chain(host: Host, direction: str) -> list[tuple[int, int]]:
    return chain(ifindex(host), direction, host.netns)


def _names(host: Host, direction: str) -> list[str]:
    return [bpfsys.prog_name(prog) or "?" for prog, _ in _chain(host, direction)]


def test_auto_mode_takes_tcx_and_goes_first_handing_every_packet_on(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    earlier = ForeignTcx(right, idx, "ingress")            # was there before us
    legacy = ForeignFilter(right, idx, "ingress")          # a clsact filter
    try:
        with observed(right) as ours:
            assert isinstance(ours.hooks, TcxHooks)
            assert _names(right, INGRESS) == ["sitevis_ingress", "foreign_count"]
            assert _names(right, EGRESS) == ["sitevis_egress"]
            later = ForeignTcx(right, idx, "ingress", "foreign_drop")  # appended, drops
            try:
                ours.drain()
                send_udp(quiet_pair.left, 40)
                assert ours.ingress_packets() == 40
                assert (earlier.count, legacy.count) == (40, 0)  # the dropper came between
            finally:
                later.close()
            send_udp(quiet_pair.left, 5)
            assert ours.ingress_packets() == 5
            assert (earlier.count, legacy.count) == (45, 5)
            assert "sitevis" not in tc_filters(right, "ingress")  # no clsact filter of ours
        assert _names(right, INGRESS) == ["foreign_count"] and _names(right, EGRESS) == []
        send_udp(quiet_pair.left, 3)
        assert (earlier.count, legacy.count) == (48, 8)
    finally:
        earlier.close()
        legacy.close()


def test_a_killed_collector_leaves_no_link_behind(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    with attached_child(right, idx, "tc", "tcx"):
        assert _names(right, INGRESS) == ["sitevis_ingress"]
    deadline = time.monotonic() + 5  # the kernel releases the links as the fds close
    while (_chain(right, INGRESS) or _chain(right, EGRESS)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _chain(right, INGRESS) == [] and _chain(right, EGRESS) == []


def test_remove_stale_takes_other_holders_links_and_clsact_leftovers(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    foreign = ForeignTcx(right, idx, "ingress")
    attach_then_sigkill(right, idx, "tc", "clsact")  # an earlier run in clsact mode
    program = FlowProgram(KernelSettings(table_size=64))
    hooks = hooks_for(program, right.netns)
    try:
        assert "sitevis_ingress" in tc_filters(right, "ingress")
        with attached_child(right, idx, "tc", "tcx"):  # another collector, still running
            assert "sitevis_ingress" in _names(right, INGRESS)
            assert hooks.remove_stale(idx) == 4  # 2 clsact filters + 2 links
            assert hooks.remove_stale(idx) == 0
            assert _names(right, INGRESS) == ["foreign_count"]
            assert "sitevis" not in tc_filters(right, "ingress") + tc_filters(right, "egress")
            with observed(right, program=program) as ours:  # now ours only: counted once
                ours.drain()
                send_udp(quiet_pair.left, 9)
                assert ours.ingress_packets() == 9
        assert foreign.count == 9
    finally:
        hooks.close()
        program.close()
        foreign.close()


def test_a_link_detached_by_someone_else_is_put_back(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    with observed(right) as ours:
        (_, link), = _chain(right, INGRESS)
        assert bpfsys.link_detach_by_id(link) == 0  # e.g. `bpftool link detach`
        assert ours.hooks.own_directions(idx) == [EGRESS]
        ours.hooks.attach(idx, (INGRESS, EGRESS))
        assert ours.hooks.own_directions(idx) == [INGRESS, EGRESS]
        (_, egress_link), = _chain(right, EGRESS)
        ours.hooks.attach(idx, (INGRESS, EGRESS))  # attached already: kept as it is
        assert _chain(right, EGRESS) == [(_chain(right, EGRESS)[0][0], egress_link)]
        assert len(_chain(right, INGRESS)) == 1
        ours.drain()
        send_udp(quiet_pair.left, 6)
        assert ours.ingress_packets() == 6


def _cli(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return host.exec(tool("sitevis-collector"), *args, check=False)


def test_hooks_and_cleanup_commands_see_and_remove_links(quiet_pair: HostPair):
    right = quiet_pair.right
    idx = ifindex(right)
    with attached_child(right, idx, "tc", "tcx", registered=True) as peer:
        listed = _cli(right, "hooks", "--expect")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == [f"veth0\tingress\ttcx\tpid {peer.pid}",
                                              f"veth0\tegress\ttcx\tpid {peer.pid}"]
        kept = _cli(right, "cleanup")  # a running collector's links stay
        assert kept.returncode == 0, kept.stderr
        assert f"veth0: left the programs of the running collector pid {peer.pid}" in \
            kept.stdout
        assert len(_chain(right, INGRESS)) == 1
        cleaned = _cli(right, "cleanup", "--force")
        assert cleaned.returncode == 0, cleaned.stderr
        assert "veth0: removed 2" in cleaned.stdout
        assert _cli(right, "hooks", "--expect").returncode == 1
        assert _chain(right, INGRESS) == [] and _chain(right, EGRESS) == []
