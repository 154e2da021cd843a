"""BPF run statistics of our programs for the ns/packet self-metric.

The kernel only accounts run time while statistics are on (kernel.bpf_stats_enabled=1, or
a BPF_ENABLE_STATS handle someone holds); that costs two clock reads per program run, so
the collector never turns it on. It reports ns/packet for intervals in which run time
was accounted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from sitevis_collector.kernel.bpfsys import enable_stats_fd

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


@contextlib.contextmanager
def enabled_stats() -> Iterator[str]:
    """BPF run-time statistics on for the block only; yields how they were turned on.

    Prefers BPF_ENABLE_STATS: reference counted and on only while its fd is open, so
    concurrent users never leave the sysctl switched on. Falls back to the sysctl (set,
    then restored). Needs CAP_SYS_ADMIN either way.
    """
    fd = enable_stats_fd()
    if fd is not None:
        try:
            yield "BPF_ENABLE_STATS fd"
        finally:
            os.close(fd)
        return
    old = STATS_SYSCTL.read_text().strip()
    STATS_SYSCTL.write_text("1\n")
    try:
        yield "sysctl kernel.bpf_stats_enabled=1"
    finally:
        STATS_SYSCTL.write_text(f"{old}\n")

def prog_run_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of the program behind a file descriptor of this process."""
    run_time = run_cnt = 0
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "run_time_ns":
            run_time = int(value)
        elif key == "run_cnt":
            run_cnt = int(value)
    return run_time, run_cnt


class NsPerPacket:
    """Average ns per program run over each interval, summed over our program fds."""

    def __init__(self) -> None:
        self._prev: tuple[int, int] | None = None

    def sample(self, fds: Iterable[int]) -> float | None:
        total_ns = total_runs = 0
        for fd in fds:
            ns, runs = prog_run_stats(fd)
            total_ns += ns
            total_runs += runs
        prev, self._prev = self._prev, (total_ns, total_runs)
        # No run, or runs without accounted time (statistics off for the whole interval).
        if prev is None or total_runs <= prev[1] or total_ns <= prev[0]:
            return None
        return (total_ns - prev[0]) / (total_runs - prev[1])
