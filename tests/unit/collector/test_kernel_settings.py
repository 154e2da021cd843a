"""Kernel settings as the collector's config means them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sitevis_collector.config import parse_config
from sitevis_collector.kernel import program as kernel
from sitevis_collector.kernel.program import KernelSettings


def test_sample_rate_limit_is_per_box_and_split_over_the_online_cpus(
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kernel, "online_cpus", lambda: 4)
    # 400 samples/s for the box -> each of 4 CPUs refills one sample every 10 ms.
    assert "-DSAMPLE_COST_NS=10000000ULL" in KernelSettings(sample_limit=400).cflags()
    monkeypatch.setattr(kernel, "online_cpus", lambda: 1)
    assert "-DSAMPLE_COST_NS=2500000ULL" in KernelSettings(sample_limit=400).cflags()


def test_the_kernel_default_is_the_config_default():
    cfg = parse_config({"site": "s", "box": "b",
                        "influxdb": {"url": "http://127.0.0.1:1", "database": "d"}})
    assert KernelSettings().sample_limit == cfg.sample_rate_limit == 100


def test_online_cpus_is_what_the_kernel_lists_as_online():
    # /sys lists online CPUs as ranges, e.g. "0-1" or "0,2-3".
    listed = 0
    for part in Path("/sys/devices/system/cpu/online").read_text().strip().split(","):
        first, _, last = part.partition("-")
        listed += int(last or first) - int(first) + 1
    assert kernel.online_cpus() == listed
