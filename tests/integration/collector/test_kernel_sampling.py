"""Sampled packet headers: 1-in-N through the ring buffer, rate-limited, losses counted."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from sitevis_collector.kernel.maps import possible_cpus
from sitevis_collector.kernel.program import KernelSettings
from sitevis_collector.records import INGRESS

from tests.harness.netns import HostPair
from tests.integration.collector import frames as f
from tests.integration.collector.kernel_kit import observed, quiet, send_frames, settle

SRC, DST = "198.18.250.1", "198.18.250.2"


def _frames(n: int) -> list[tuple[bytes, int]]:
    tcp = f.eth(0x0800, f.ipv4(SRC, DST, 6, f.tcp(1234, 443, f.TCP_SYN), ttl=33))
    return [(tcp, n)]


@pytest.fixture
def quiet_pair(bcc_ready, host_pair: HostPair) -> Iterator[HostPair]:
    quiet(host_pair)
    yield host_pair


def test_one_in_n_samples_carry_the_packet_header(quiet_pair: HostPair):
    sent, rate = 6000, 10
    settings = KernelSettings(sample_rate=rate, sample_limit=10_000_000, sample_burst=100_000)
    with observed(quiet_pair.right, settings) as right:
        right.drain()
        send_frames(quiet_pair.left, _frames(sent))
        settle()
        got = right.drain()
    assert got.totals[("veth0", INGRESS)].packets == sent
    assert got.ringbuf_lost == 0 and got.samples_rate_limited == 0
    # Binomial(sent, 1/rate): six standard deviations either side.
    mean = sent / rate
    spread = 6 * math.sqrt(sent * (1 / rate) * (1 - 1 / rate))
    assert mean - spread <= len(got.samples) <= mean + spread
    frame_len = len(_frames(1)[0][0])
    for s in got.samples:
        assert (s.ifname, s.direction, s.proto, s.src, s.dst, s.sport, s.dport) == (
            "veth0", INGRESS, "tcp", SRC, DST, 1234, 443)
        assert (s.length, s.ttl, s.tcp_flags, s.sample_rate) == (frame_len, 33, f.TCP_SYN, rate)


def test_full_ring_buffer_losses_are_counted(quiet_pair: HostPair):
    # One page holds ~56 records of 72 bytes; nothing is read until the end.
    sent = 2000
    settings = KernelSettings(sample_rate=1, sample_limit=10_000_000, sample_burst=100_000,
                              ringbuf_pages=1)
    with observed(quiet_pair.right, settings) as right:
        right.drain()
        send_frames(quiet_pair.left, _frames(sent))
        settle()
        got = right.drain()
    assert got.samples_rate_limited == 0
    assert 0 < len(got.samples) < 100
    assert len(got.samples) + got.ringbuf_lost == sent


def test_rate_limit_bounds_samples_and_counts_the_rest(quiet_pair: HostPair):
    sent, burst = 5000, 20
    settings = KernelSettings(sample_rate=1, sample_limit=2, sample_burst=burst)
    with observed(quiet_pair.right, settings) as right:
        right.drain()
        send_frames(quiet_pair.left, _frames(sent))
        settle()
        got = right.drain()
    assert got.ringbuf_lost == 0
    assert len(got.samples) + got.samples_rate_limited == sent
    # Each CPU's bucket starts full (burst) and refills at most a few samples meanwhile.
    cpus = possible_cpus()
    assert burst <= len(got.samples) <= cpus * (burst + 5)
