"""Fixtures giving tests real parts; every one cleans up even when the test fails."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
