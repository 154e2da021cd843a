"""BPF run statistics of our programs (kernel.bpf_stats_enabled=1) for the ns/packet metric.

The sysctl costs two clock reads per program run, so the collector never turns it on;
it reports ns/packet only while an operator (or a benchmark) has it enabled.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


def stats_enabled() -> bool:
    try:
        return STATS_SYSCTL.read_text().strip() == "1"
    except OSError:
        return False


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
        if not stats_enabled():
            self._prev = None
            return None
        total_ns = total_runs = 0
        for fd in fds:
            ns, runs = prog_run_stats(fd)
            total_ns += ns
            total_runs += runs
        prev, self._prev = self._prev, (total_ns, total_runs)
        if prev is None or total_runs <= prev[1]:
            return None
        return (total_ns - prev[0]) / (total_runs - prev[1])
