"""Two instances on one host: a live peer's programs are never removed or taken for
ours, whatever the mechanism; a gone instance's are (instances.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sitevis_collector.errors import ClaimedByPeerError
from sitevis_collector.hooks import hooks_for, instances
from sitevis_collector.hooks.tcx import tcx_available
from sitevis_collector.kernel.program import FlowProgram, KernelSettings

from tests.harness.netns import HostPair
from tests.integration.collector.kernel_kit import (
    attached_child,
    ifindex,
    observed,
    quiet,
    send_udp,
)

MECHANISMS = [("tc", "clsact"), ("tc", "tcx"), ("xdp", "auto")]


@pytest.fixture
def quiet_pair(bcc_ready, host_pair: HostPair) -> Iterator[HostPair]:
    quiet(host_pair)
    yield host_pair


def _needs(tc_attach: str) -> None:
    if tc_attach == "tcx" and not tcx_available():
        pytest.skip("this kernel has no tcx hooks (Linux < 6.6)")


@pytest.mark.parametrize(("hook", "tc_attach"), MECHANISMS)
def test_a_live_peers_programs_stay_and_a_gone_ones_go(quiet_pair: HostPair, hook: str,
                                                       tc_attach: str):
    _needs(tc_attach)
    right = quiet_pair.right
    idx = ifindex(right)
    program = FlowProgram(KernelSettings(hook=hook, table_size=64))
    hooks = hooks_for(program, right.netns, tc_attach)
    try:
        with attached_child(right, idx, hook, tc_attach, registered=True) as peer:
            [theirs] = [i for i in instances.live_instances() if i.pid == peer.pid]
            found = hooks.found(idx)
            assert found and {f.prog_id for f in found} <= set(theirs.prog_ids)
            assert hooks.remove_stale(idx) == 0          # alive: left alone
            assert hooks.found(idx) == found
            assert hooks.own_directions(idx) == []       # never taken for ours
            if hook == "xdp" or tc_attach == "clsact":   # one program per hook slot
                with pytest.raises(ClaimedByPeerError, match=f"pid {peer.pid}"):
                    hooks.attach(idx, program.directions)
                assert hooks.found(idx) == found
        # SIGKILLed: its registration's lock went with it.
        assert peer.pid not in {i.pid for i in instances.live_instances()}
        left = 0 if tc_attach == "tcx" else len(found)   # the kernel drops tcx links
        assert hooks.remove_stale(idx) == left
        assert hooks.found(idx) == []
    finally:
        hooks.close()
    with observed(right, program=program, tc_attach=tc_attach) as ours:
        ours.drain()
        send_udp(quiet_pair.left, 13)
        assert ours.ingress_packets() == 13
    program.close()
