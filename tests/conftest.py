"""Fixtures giving tests real parts; every one cleans up even when the test fails."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.bpf import bcc_unusable_reason
from tests.harness.influx import InfluxServer, find_influxd
from tests.harness.netns import (
    HostLink,
    HostPair,
    create_link,
    create_pair,
    destroy_link,
    destroy_pair,
)

IN_CI = os.environ.get("CI", "").lower() == "true"
TESTS = Path(__file__).parent

# What a test needs (the markers of pyproject.toml), known from what it uses: first the
# shared fixtures below (pytest counts the fixtures they in turn use, so a module's
# quiet_pair inherits bcc_ready's), then, keyed "module under tests/::name", a module's
# own fixture or a test that sets up or checks for root, BPF or influxd itself, and
# "module" alone for every test of it. A BPF test parametrized with "tcx" (tc_attach)
# needs tcx hooks. `pytest -m "not root"` then runs what needs no root.
FIXTURE_NEEDS = {
    "bcc_ready": ("root", "bpf"),
    "host_pair": ("root",),
    "host_link": ("root",),
    "influxdb": ("influxd",),
    "influxdb_auth": ("influxd",),
}
LOCAL_NEEDS = {
    "browser/test_pages.py": ("root", "bpf", "influxd"),
    "integration/collector/test_attach.py::netns": ("root",),
    "integration/collector/test_delivery.py::influxdb_tls": ("influxd",),
    "integration/collector/test_readiness.py::"
    "test_unreadable_kernel_headers_are_told_apart_from_missing_ones": ("root",),
    "integration/collector/test_agent.py::"
    "test_killed_collector_in_tcx_mode_leaves_nothing_and_the_next_run_counts_once": ("tcx",),
    "integration/collector/test_tcx_hooks.py": ("tcx",),
    "integration/controller/test_queries.py::site": ("influxd",),
    "integration/controller/test_status.py::site": ("root", "bpf", "influxd"),
    "integration/controller/test_runner.py::runner_dir": ("ansible",),
    "integration/controller/test_runner.py::"
    "test_main_job_on_this_machine_is_idempotent_verified_and_removable":
        ("root", "bpf", "rollout"),
    "integration/test_bench_smoke.py::bench_ready": ("influxd",),
    "integration/test_collection.py": ("ansible",),
    "integration/test_dashboards.py::site": ("root", "bpf", "influxd", "ansible"),
    "integration/test_influxdb_schema.py": ("ansible",),
    "integration/test_role_tags.py": ("ansible",),
    "integration/test_roles_on_this_machine.py::"
    "test_kernel_headers_links_generic_headers_once_and_check_mode_changes_nothing":
        ("root", "ansible", "rollout"),
}


def needs(item: pytest.Item) -> set[str]:
    """The markers `item` should carry, from the fixtures and names above."""
    module = item.path.relative_to(TESTS).as_posix()
    names = {*item.fixturenames, getattr(item, "originalname", item.name)}
    found = {mark for name in names for mark in FIXTURE_NEEDS.get(name, ())}
    found.update(LOCAL_NEEDS.get(module, ()))
    found.update(mark for name in names for mark in LOCAL_NEEDS.get(f"{module}::{name}", ()))
    callspec = getattr(item, "callspec", None)
    if "bpf" in found and callspec and any(
            isinstance(value, str) and value == "tcx" for value in callspec.params.values()):
        found.add("tcx")
    return found


def _stale_local_needs() -> list[str]:
    """Keys of LOCAL_NEEDS whose module or fixture/test no longer exists (renamed?)."""
    stale = []
    for key in LOCAL_NEEDS:
        module, _, name = key.partition("::")
        path = TESTS / module
        if not path.is_file() or (name and f"def {name}(" not in path.read_text()):
            stale.append(key)
    return stale


def _no_tcx_here() -> str | None:
    """Why tests marked tcx are deselected on this machine, or None: a kernel without
    tcx hooks (< 6.6, e.g. Debian 12's 6.1). They are not skipped (CI fails a skip): the
    kernels stage proves tcx on the matrix's 6.12 kernels and clsact on 6.1."""
    if os.geteuid() != 0:
        return None  # they skip for want of root, as every root test does
    from sitevis_collector.hooks.tcx import tcx_available

    if tcx_available():
        return None
    return (f"this kernel ({os.uname().release}) has no tcx hooks (Linux < 6.6); the "
            "kernel matrix (./run test kernels) proves tcx on 6.12 and clsact on 6.1")


_DESELECTED: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stale = _stale_local_needs()
    if stale:
        raise pytest.UsageError(f"tests/conftest.py LOCAL_NEEDS names what is gone: {stale}")
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for name in sorted(needs(item) - present):
            item.add_marker(name)
    tcx_tests = {item for item in items if item.get_closest_marker("tcx")}
    reason = _no_tcx_here() if tcx_tests else None
    if reason:
        config.hook.pytest_deselected(items=list(tcx_tests))
        items[:] = [item for item in items if item not in tcx_tests]
        _DESELECTED.append(f"{len(tcx_tests)} tests marked tcx deselected: {reason}")


ROLLOUT_LOCK = Path("/run/lock/sitevis-tests-rollout.lock")


@pytest.fixture(autouse=True)
def _one_rollout_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that install onto this machine share apt's lock, /etc and /lib/modules: on
    several pytest workers (`./run test pytest` runs two) they wait for each other."""
    if request.node.get_closest_marker("rollout") is None:
        yield
        return
    ROLLOUT_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with ROLLOUT_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _DESELECTED:
        terminalreporter.write_line(line, yellow=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI every server is started and we are root: a skip there is a failure."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where nothing may skip: {reason}"


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")


@pytest.fixture
def bcc_ready() -> None:
    """Skip (with the reason) unless BCC can compile and load programs here."""
    reason = bcc_unusable_reason()
    if reason:
        pytest.skip(reason)


def _influx(auth: bool) -> Iterator[InfluxServer]:
    binary = find_influxd()
    if binary is None:
        pytest.skip("influxd not installed (Debian package influxdb; ./run test installs it)")
    server = InfluxServer(binary, auth=auth)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def influxdb() -> Iterator[InfluxServer]:
    """A private influxd on a free loopback port with a temporary data dir (auth off)."""
    yield from _influx(auth=False)


@pytest.fixture
def influxdb_auth() -> Iterator[InfluxServer]:
    """Like influxdb, with auth-enabled = true (create the admin user first)."""
    yield from _influx(auth=True)


@pytest.fixture
def host_pair() -> Iterator[HostPair]:
    """Two network namespaces joined by a veth pair, addressed in 198.18.0.0/15."""
    _require_root()
    pair = create_pair()
    try:
        yield pair
    finally:
        destroy_pair(pair)


@pytest.fixture
def host_link() -> Iterator[HostLink]:
    """A veth from this namespace (name svh*, 198.18.x.1) to a test host in its own netns."""
    _require_root()
    link = create_link()
    try:
        yield link
    finally:
        destroy_link(link)
