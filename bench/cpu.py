"""Benchmark 3: CPU added per packet (whole VM) by sitevis vs tcpdump, same rate.

One trafgen run sends at a fixed rate (-b, qdisc path) from the left veth. trafgen paces
-b in one-second steps: each second it sends that second's packets at full speed (a
burst of ~0.4 s at 150 kpps) and then idles. The benchmark uses that clock: every burst
is one phase, and between bursts, in the idle gap, it switches which watcher is on —
nothing; the minimal 5-tuple flow program (reference); sitevis (ingress + egress,
attached as the collector does: tcx links where the kernel has tcx, else clsact
filters); `tcpdump -w /dev/null -s 96 -i veth0` — in the pattern
off, A, off, B, off, C, off, ... (A, B, C rotated every round). A phase's window runs
from just before its burst to just after it and holds exactly that burst: busy time of
the whole VM in it (wall x CPUs minus cpuidle's idle residency) per packet. What a
watcher adds = the 20th percentile of its phases minus the 20th percentile of the "off"
phases; the median view is printed beside it.

Why this shape: the send path's own cost varies by 5-25 % from second to second on these
VMs (host-side vCPU speed changes, other guests), as much as a watcher adds. Such
interference only ever adds time, so the lower part of each distribution is the
undisturbed cost, and with the watchers interleaved second by second every one of them
meets the same conditions. No process is started or stopped inside a window (trafgen and
tcpdump keep running). tcpdump is switched without restarting it: its packet socket is
taken with pidfd_getfd(2) and re-bound to ETH_P_ALL (on) or to an ethertype nothing here
sends (off: the socket leaves the device's all-packets tap, so the kernel does no work
for it).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import (
    BenchError,
    Lab,
    Sitevis,
    Table,
    busy_clock_ns,
    flow5_program,
    median,
    run_cli,
    settle,
    task_cpu_ns,
    total,
    trafgen_command,
    verdict,
    with_sitevis,
)

TARGET_RATIO = 0.5
# Rounds: one round is each watcher once, each between two "off" phases (2 s a watcher).
# The per-phase noise (SD ~150-300 ns/packet) is what sets the interval's width.
REPS = 80
SRCS, PORTS = 64, 63
NONE, FLOW5, SITEVIS, TCPDUMP = ("no program", "minimal 5-tuple flow (ref)",
                                 "sitevis (ingress+egress)", "tcpdump -w /dev/null -s 96")
WATCHERS = (FLOW5, SITEVIS, TCPDUMP)
SWITCH_AT = 0.85   # s after a burst's start: switch watchers for the next burst
WINDOW = (-0.1, 0.7)  # s around a burst's start: the measured window
# Judged on this quantile of each watcher's phases (and of the "off" phases): see _table's
# note. Two 40-round runs, one on a quiet host and one on a busy one, gave 0.29 and 0.32
# this way; their medians said 0.33 and 0.47 (interval 0.32-0.92).
LOW_QUANTILE = 0.2
ETH_P_ALL = 0x0003
ETH_P_NOTHING = 0x88B5  # IEEE local experimental: nothing in the lab sends it
SYS_PIDFD_GETFD = 438   # same number on every architecture


@dataclass
class Phase:
    watcher: str
    busy_ns: int
    packets: int
    tcpdump_ns: int  # tcpdump's own CPU time inside the window

    @property
    def ns_per_packet(self) -> float:
        return self.busy_ns / self.packets if self.packets else float("nan")


class TcpdumpTap:
    """A running tcpdump whose packet socket can be taken off the device and put back."""

    def __init__(self, the_lab: Lab) -> None:
        host = the_lab.left
        self.ifindex = the_lab.ifindex[host.netns]
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "tcpdump", "-w", "/dev/null", "-s", "96",
             "-i", host.ifname, "-n"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self._wait_listening()
            self.sock = _packet_socket_of(self.proc.pid)
            self.off()
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def _wait_listening(self) -> None:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if ready and "listening on" in self.proc.stderr.readline():
                return
            if self.proc.poll() is not None:
                break
        raise BenchError("tcpdump did not start listening within 10 s")

    def _bind(self, protocol: int) -> None:
        # struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype,
        # halen, addr[8]. Python's AF_PACKET bind wants a name; ifindex is what we have.
        addr = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(protocol),
                           self.ifindex, 0, 0, 0, b"")
        if _libc.bind(self.sock.fileno(), addr, len(addr)) != 0:
            err = ctypes.get_errno()
            raise BenchError(f"re-binding tcpdump's socket failed: {os.strerror(err)}")

    def on(self) -> None:
        self._bind(ETH_P_ALL)

    def off(self) -> None:
        self._bind(ETH_P_NOTHING)

    def switch_on(self) -> Callable[[], None]:
        """on(), returning how to switch off (the Switch protocol)."""
        self.on()
        return self.off

    def cpu_ns(self) -> int:
        return task_cpu_ns(self.proc.pid)

    def stop(self) -> int:
        """Packets tcpdump's socket received ("received by filter"; final at once)."""
        self.sock.close()
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        found = re.search(r"(\d+) packets? received by filter", err or "")
        return int(found.group(1)) if found else -1


_libc = ctypes.CDLL(None, use_errno=True)


def _packet_socket_of(pid: int) -> socket.socket:
    """A duplicate of the AF_PACKET socket held by process pid (pidfd_getfd, Linux 5.6)."""
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = _libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                continue
            sock = socket.socket(fileno=fd)
            if sock.family == socket.AF_PACKET:
                return sock
            sock.close()
    finally:
        os.close(pidfd)
    raise BenchError(f"no packet socket found in tcpdump (pid {pid}); pidfd_getfd needs "
                     "Linux >= 5.6 and root")


class Switch:
    """Turns one watcher on and off between bursts."""

    def __init__(self, on: Callable[[], Callable[[], None]]) -> None:
        self._on: Callable[[], Callable[[], None]] = on
        self._off: Callable[[], None] | None = None

    def on(self) -> None:
        self._off = self._on()

    def off(self) -> None:
        if self._off is not None:
            self._off()
            self._off = None


def schedule(rounds: int) -> list[str]:
    """off, A, off, B, off, C, off, ... with A, B, C rotated every round."""
    phases = [NONE]
    for rnd in range(rounds):
        order = WATCHERS[rnd % 3:] + WATCHERS[:rnd % 3]
        for name in order:
            phases += [name, NONE]
    return phases


def measure(the_lab: Lab, sitevis: Sitevis, *, rate_pps: int = 150_000, reps: int = REPS,
            frame: int = 64) -> Table:
    left, right = the_lab.left, the_lab.right
    conf = the_lab.conf(frame, SRCS, PORTS)
    flow5 = flow5_program(sitevis.program.settings.table_size)
    try:
        tap = TcpdumpTap(the_lab)
    except BaseException:
        flow5.close()
        raise
    switches = {
        FLOW5: Switch(lambda: the_lab.attach_ref(left, flow5.fd, "bench_flow5")),
        SITEVIS: Switch(lambda: sitevis.attach(left, ("ingress", "egress"))),
        TCPDUMP: Switch(tap.switch_on),
    }
    plan = schedule(reps)
    phases: list[Phase] = []
    tcpdump_total = 0
    try:
        sitevis.drain()
        flow5.reset()
        received = lambda: the_lab.counters(right)["rx_packets"]  # noqa: E731
        start_count = received()
        proc = subprocess.Popen(
            trafgen_command(left, conf, rate_pps * (len(plan) + 2), rate_pps=rate_pps),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            first = _first_burst(received, start_count, proc)
            tcpdump_start = tap.cpu_ns()
            current = NONE
            for k, name in enumerate(plan):
                burst = first + 1 + k
                _sleep_until(burst - 1 + SWITCH_AT)
                if name != current:
                    if current != NONE:
                        switches[current].off()
                    if name != NONE:
                        switches[name].on()
                    current = name
                _sleep_until(burst + WINDOW[0])
                b0, p0, t0 = busy_clock_ns(), received(), tap.cpu_ns()
                _sleep_until(burst + WINDOW[1])
                b1, p1, t1 = busy_clock_ns(), received(), tap.cpu_ns()
                phases.append(Phase(name, b1 - b0, p1 - p0, t1 - t0))
                if proc.poll() is not None:
                    raise BenchError(f"trafgen stopped early: {_tail(proc)}")
            if current != NONE:
                switches[current].off()
            tcpdump_total = tap.cpu_ns() - tcpdump_start
        finally:
            proc.kill()
            proc.wait()
        settle(0.2)
        seen = {FLOW5: flow5.counted(), SITEVIS: total(sitevis.drain(), "egress")[0]}
    finally:
        for switch in switches.values():
            switch.off()
        seen_tcpdump = tap.stop()
        flow5.close()
    seen[TCPDUMP] = seen_tcpdump
    table = _table(phases, seen, rate_pps=rate_pps, reps=reps, frame=frame,
                   tcpdump_total=tcpdump_total)
    table.notes.append(f"sitevis and the minimal program are attached as {sitevis.mechanism} "
                       "(the collector's default here), tcpdump through a packet socket")
    return table


def _first_burst(received: Callable[[], int], before: int, proc: subprocess.Popen) -> float:
    """The moment trafgen's first burst starts (the receiver's counter moves)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if received() != before:
            return time.monotonic()
        if proc.poll() is not None:
            raise BenchError(f"trafgen exited {proc.returncode}: {_tail(proc)}")
        time.sleep(0.002)
    raise BenchError("trafgen sent nothing within 10 s")


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _tail(proc: subprocess.Popen) -> str:
    if proc.poll() is None or proc.stderr is None:
        return "still running"
    return (proc.stderr.read() or "").strip()[-300:]


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


Round = dict[str, list[float]]


def rounds_of(phases: list[Phase], rate_pps: int) -> list[Round]:
    """ns/packet of every phase whose window held exactly one whole burst, grouped by
    round (the leading "off" phase belongs to the first)."""
    rounds: list[Round] = []
    for i, phase in enumerate(phases):
        index = max(0, i - 1) // (2 * len(WATCHERS))
        while len(rounds) <= index:
            rounds.append({name: [] for name in (NONE, *WATCHERS)})
        if phase.packets == rate_pps:
            rounds[index][phase.watcher].append(phase.ns_per_packet)
    return rounds


def added(rounds: list[Round], q: float) -> dict[str, float]:
    """Per watcher: q-quantile of its phases minus q-quantile of the "off" phases."""
    pooled = {name: [v for r in rounds for v in r[name]] for name in (NONE, *WATCHERS)}
    base = quantile(pooled[NONE], q)
    return {name: quantile(pooled[name], q) - base for name in WATCHERS}


def ratio_interval(rounds: list[Round], q: float = LOW_QUANTILE, *, draws: int = 2000,
                   seed: int = 1) -> tuple[float, float]:
    """5th-95th percentile of sitevis added / tcpdump added over rounds resampled with
    replacement (a round's phases stay together)."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        est = added([rng.choice(rounds) for _ in rounds], q)
        ratios.append(est[SITEVIS] / est[TCPDUMP] if est[TCPDUMP] > 0 else float("inf"))
    ratios.sort()
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


def _table(phases: list[Phase], seen: dict[str, int], *, rate_pps: int, reps: int,
           frame: int, tcpdump_total: int) -> Table:
    rounds = rounds_of(phases, rate_pps)
    pooled = {name: [v for r in rounds for v in r[name]] for name in (NONE, *WATCHERS)}
    if not all(pooled.values()):
        raise BenchError(f"no window held exactly one whole burst of {rate_pps} packets "
                         "for every watcher: trafgen could not send them in time; lower "
                         "--rate")
    low, mid = added(rounds, LOW_QUANTILE), added(rounds, 0.5)
    ratio = low[SITEVIS] / low[TCPDUMP] if low[TCPDUMP] > 0 else float("inf")
    ratio_mid = mid[SITEVIS] / mid[TCPDUMP] if mid[TCPDUMP] > 0 else float("inf")
    lo, hi = ratio_interval(rounds)
    lo_mid, hi_mid = ratio_interval(rounds, 0.5)
    passed = hi <= TARGET_RATIO
    decided = passed or lo > TARGET_RATIO
    pct = f"{LOW_QUANTILE * 100:.0f}th pct"
    table = Table(
        f"3. CPU added per packet, whole VM (busy = wall x CPUs - cpuidle residency; one "
        f"trafgen run at -b {rate_pps} pps, {frame} B; {reps} rounds, a watcher per "
        f"one-second burst between two bursts with none)",
        ["watcher", "phases", f"VM busy ns/pkt: {pct}", "median",
         f"added ns/pkt ({pct})", "x tcpdump's", "added ns/pkt (median view)",
         "x tcpdump's (median view)", "seen / sent while on", "target", "result"],
    )
    table.add(NONE, len(pooled[NONE]), f"{quantile(pooled[NONE], LOW_QUANTILE):.0f}",
              f"{median(pooled[NONE]):.0f}", "-", "-", "-", "-", "", "", "")
    exact = True
    for name in WATCHERS:
        sent = sum(p.packets for p in phases if p.watcher == name)
        exact &= seen[name] == sent
        is_sv = name == SITEVIS
        table.add(name, len(pooled[name]), f"{quantile(pooled[name], LOW_QUANTILE):.0f}",
                  f"{median(pooled[name]):.0f}", f"{low[name]:.0f}",
                  _times(low[name], low[TCPDUMP]), f"{mid[name]:.0f}",
                  _times(mid[name], mid[TCPDUMP]), f"{seen[name]}/{sent}",
                  f"<= {TARGET_RATIO}x tcpdump (90 % interval)" if is_sv else "",
                  (verdict(passed) if decided else "UNDECIDED") if is_sv else "")
    table.checks[f"sitevis adds <= {TARGET_RATIO}x tcpdump's CPU per packet"] = passed
    whole = sum(p.packets == rate_pps for p in phases)
    outside = tcpdump_total - sum(p.tcpdump_ns for p in phases if p.watcher == TCPDUMP)
    table.data.update(ratio=ratio, interval=(lo, hi), ratio_median=ratio_mid,
                      interval_median=(lo_mid, hi_mid), added=low, added_median=mid,
                      exact=exact, whole=whole, phases=len(phases),
                      log=[(p.watcher, p.packets, p.busy_ns) for p in phases])
    table.notes.append(f"sitevis/tcpdump added CPU: {ratio:.2f} from the {pct} (90 % "
                       f"bootstrap interval {lo:.2f}-{hi:.2f}, rounds resampled; judged: "
                       "PASS only when the whole interval is within the target, FAIL when "
                       f"all of it is above); median view {ratio_mid:.2f} "
                       f"({lo_mid:.2f}-{hi_mid:.2f})")
    table.notes.append(f"why the {pct}: interference from outside the VM only ever adds "
                       "time to a phase (a slowed vCPU, other work), never removes it, so "
                       "the lower part of each distribution is its undisturbed cost; medians "
                       "move with how much of the run was disturbed")
    off = pooled[NONE]
    null = quantile(off[::2], LOW_QUANTILE) - quantile(off[1::2], LOW_QUANTILE)
    table.notes.append(f"null check: the {pct} of every other 'off' phase minus that of the "
                       f"rest: {null:.0f} ns/pkt (should be ~0)")
    table.notes.append(f"{whole} of {len(phases)} windows held exactly one burst of "
                       f"{rate_pps} packets (only those are used)")
    if tcpdump_total > 0:
        table.notes.append(f"tcpdump's own CPU time outside its windows (work it deferred "
                           f"past a window, counted for nobody): "
                           f"{100 * outside / tcpdump_total:.0f} % of its total")
    return table


def _times(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=150_000,
                        help="packets per second (sent as one burst each second; <= ~200000)")
    parser.add_argument("--reps", type=int, default=REPS,
                        help=f"rounds, 6 s each (default {REPS})")
    args = parser.parse_args(argv)
    return run_cli(with_sitevis(lambda the_lab, sitevis: measure(
        the_lab, sitevis, rate_pps=args.rate, reps=args.reps)))


if __name__ == "__main__":
    sys.exit(main())
