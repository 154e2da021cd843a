"""What the kernel matrix proves on every kernel (guest.py reports, this asserts): the
collector as the role installs it passes `check`; with the role's defaults (tc,
tc_attach auto) it takes clsact below 6.6 and tcx from 6.6 and counts every packet and
byte of each direction exactly; after a SIGKILL the next run replaces what was left,
counts once and leaves nothing; XDP counts ingress exactly and delivers it; `cleanup`
removes what a killed collector left."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from tests.kernels.conftest import selected
from tests.kernels.matrix import Kernel, expected_hook

KERNELS = selected()
Result = dict[str, Any]
NO_PROGRAM = {"hooks": [], "tc_filters": [], "xdp": False}  # and "clsact": a test of its own


@pytest.fixture(params=KERNELS, ids=[k.name for k in KERNELS])
def kernel(request: pytest.FixtureRequest) -> Kernel:
    return request.param


@pytest.fixture
def result(matrix_results: dict[str, Future[Result]], kernel: Kernel) -> Result:
    return matrix_results[kernel.name].result()


def step(result: Result, name: str) -> Result:
    """One step of the guest's report; an error in it fails the test, naming it."""
    assert result.get("error") is None, result["error"]
    assert name in result, f"the guest did not get to {name}"
    found: Result = result[name]
    assert "error" not in found, f"{name}: {found['error']}"
    return found


def hooks(listed: list[str]) -> list[tuple[str, ...]]:
    """`hooks` lines as (interface, direction, mechanism), in order."""
    return [tuple(line.split()[:3]) for line in listed]


def sent(found: Result, *directions: str) -> dict[str, dict[str, int]]:
    return {d: {"packets": found["sent"][d][0], "bytes": found["sent"][d][1]}
            for d in directions}


def test_kernel_is_the_declared_one(kernel: Kernel, result: Result):
    assert result["release"].startswith(kernel.series), result["release"]


def test_check_passes_and_says_whether_the_kernel_has_tcx(result: Result):
    check = step(result, "check")
    assert check["rc"] == 0, "\n".join(check["stdout"] + check["stderr"])
    tc_line = next(line for line in check["stdout"] if "TC clsact/cls_bpf" in line)
    if expected_hook(result["release"]) == "tcx":
        assert "clsact + cls_bpf filter and tcx links added and removed" in tc_line
    else:
        assert "no tcx in this kernel: clsact is used" in tc_line


def test_auto_takes_the_kernels_hook_and_counts_each_direction_exactly(result: Result):
    hook = expected_hook(result["release"])
    once = step(result, "tc_once")
    assert once["rc"] == 0, once["stderr"]
    assert hooks(once["running"]) == [("veth0", "ingress", hook), ("veth0", "egress", hook)]
    assert once["iface"] == sent(once, "egress", "ingress")
    assert once["flow"] == once["iface"]   # the flow rows add up to the totals


def test_after_sigkill_the_next_run_counts_once_and_leaves_nothing(result: Result):
    hook = expected_hook(result["release"])
    killed = step(result, "tc_killed")
    assert hooks(killed["running"]) == [("veth0", "ingress", hook), ("veth0", "egress", hook)]
    # The kernel drops a killed process's tcx links; clsact filters stay until the
    # next run (or cleanup) removes them.
    left = [] if hook == "tcx" else [f"veth0 {d} clsact no running collector"
                                     for d in ("ingress", "egress")]
    assert killed["after_kill"] == left
    once = step(result, "tc_once")   # attached as exactly its own two, not beside them
    assert [line.split()[-1] for line in once["running"]] == [once["running"][0].split()[-1]] * 2
    assert once["iface"] == sent(once, "egress", "ingress")
    assert {k: v for k, v in once["left"].items() if k != "clsact"} == NO_PROGRAM


def test_xdp_counts_ingress_exactly_and_delivers_it(result: Result):
    run = step(result, "xdp_run")
    assert hooks(run["running"]) == [("veth0", "ingress", "xdp")]
    assert run["iface"] == sent(run, "ingress")   # summed over the intervals delivered
    assert run["flow"] == run["iface"]


def test_cleanup_removes_what_a_killed_collector_left(result: Result):
    run = step(result, "xdp_run")
    assert run["after_kill"] == ["veth0 ingress xdp no running collector"]
    cleanup = step(result, "cleanup")
    assert cleanup["rc"] == 0, cleanup["stderr"]
    assert cleanup["stdout"][-1] == "cleanup: 1 removed from 1 interface(s)"
    assert {k: v for k, v in cleanup["left"].items() if k != "clsact"} == NO_PROGRAM


def test_no_clsact_qdisc_is_left_after_sigkill_the_next_run_and_cleanup(result: Result):
    """A collector in clsact mode adds a clsact qdisc where there was none and removes
    it when it detaches; one killed cannot, and the veth had no qdisc before."""
    assert step(result, "tc_once")["left"]["clsact"] is False, \
        "the clsact qdisc a SIGKILLed collector added outlives the next run"
    assert step(result, "cleanup")["left"]["clsact"] is False, \
        "`sitevis-collector cleanup` leaves the clsact qdisc a SIGKILLed collector added"
