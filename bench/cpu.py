"""Benchmark 3: CPU added per packet (whole VM) by sitevis vs tcpdump, same rate.

trafgen sends N frames at a fixed rate (-b, qdisc path) from the left veth while one
of these watches that veth: nothing; the minimal 5-tuple flow program (reference);
sitevis (ingress + egress, attached as the collector does: tcx links where the
kernel has tcx, else clsact filters; default settings);
`tcpdump -w /dev/null -s 96 -i veth0`. Busy time of the whole VM over the sending
window — wall time x CPUs minus cpuidle's exact idle residency where the kernel has
cpuidle (bench.common.idle_residency_ns), else /proc/stat's 10 ms ticks — divided by the
packets, minus the same with nothing attached = added CPU per packet. Runs are
interleaved in rotating order; added = median over rounds of (watcher - baseline of
the same round). The machine is shared, so a second, less noisy
estimate is printed beside it: CPU of the processes we started (trafgen, tcpdump)
plus the kernel's own (irq + softirq time, kernel threads such as ksoftirqd).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.common import (
    BenchError,
    Lab,
    Sitevis,
    Table,
    busy_ns,
    cpu_sample,
    flow5_program,
    jiffies_ns,
    median,
    proc_cpu_ticks,
    run_cli,
    run_trafgen,
    settle,
    spread,
    total,
    verdict,
    with_sitevis,
)

TARGET_RATIO = 0.5
# Rounds: the send path's run-to-run noise (SD ~8 % of its ~2 us/packet) is as large as
# what a watcher adds (the vCPU's speed flips between two levels ~1.6x apart within
# seconds: host-side). 25 rounds left the ratio's 90 % interval ~0.27 wide, 60 rounds
# 0.09-0.21, 100 rounds 0.11; it narrows as 1/sqrt(rounds). ~10 s a round.
REPS = 60
SRCS, PORTS = 64, 63
NONE, FLOW5, SITEVIS, TCPDUMP = ("no program", "minimal 5-tuple flow (ref)",
                                 "sitevis (ingress+egress)", "tcpdump -w /dev/null -s 96")


@dataclass
class Run:
    vm_ns: float        # whole-VM busy ns per packet
    own_ns: float       # trafgen + tcpdump + irq/softirq + kernel threads, ns per packet
    pps: float
    sent: int
    seen: int | None    # packets the watcher saw (None: nothing watched)
    dropped: int = 0    # tcpdump: packets dropped by kernel


class _Tcpdump:
    def __init__(self, the_lab: Lab) -> None:
        host = the_lab.left
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "tcpdump", "-w", "/dev/null", "-s", "96",
             "-i", host.ifname, "-n"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.2)
            if ready and "listening on" in self.proc.stderr.readline():
                return
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        raise BenchError("tcpdump did not start listening within 10 s")

    def ticks(self) -> int:
        return proc_cpu_ticks(self.proc.pid)

    def stop(self) -> tuple[int, int]:
        """(received by its socket, dropped by kernel). Received, not "captured": the
        socket's own count is final at once, so tcpdump is stopped right after the
        window instead of being given a second to write out its last block."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        cap = re.search(r"(\d+) packets? received by filter", err)
        drop = re.search(r"(\d+) packets? dropped by kernel", err)
        return int(cap.group(1)) if cap else -1, int(drop.group(1)) if drop else -1


def measure(the_lab: Lab, sitevis: Sitevis, *, packets: int = 200_000,
            rate_pps: int = 150_000, reps: int = REPS, frame: int = 64) -> Table:
    left = the_lab.left
    conf = the_lab.conf(frame, SRCS, PORTS)
    flow5 = flow5_program(sitevis.program.settings.table_size)

    @contextlib.contextmanager
    def watcher(name: str) -> Iterator[dict[str, object]]:
        info: dict[str, object] = {"seen": None, "ticks": lambda: 0}
        if name == NONE:
            yield info
        elif name == FLOW5:
            flow5.reset()
            remove = the_lab.attach_ref(left, flow5.fd, "bench_flow5")
            try:
                yield info
            finally:
                remove()
            info["seen"] = flow5.counted()
        elif name == SITEVIS:
            sitevis.drain()
            remove = sitevis.attach(left, ("ingress", "egress"))
            try:
                yield info
            finally:
                remove()
            info["seen"] = total(sitevis.drain(), "egress")[0]
        else:
            dump = _Tcpdump(the_lab)
            info["ticks"] = dump.ticks
            try:
                yield info
            finally:
                info["seen"], info["dropped"] = dump.stop()

    runs: dict[str, list[Run]] = {n: [] for n in (NONE, FLOW5, SITEVIS, TCPDUMP)}
    try:
        names = list(runs)
        for rep in range(reps):
            # Rotate the order so no watcher always follows the same one.
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                with watcher(name) as info:
                    ticks: Callable[[], int] = info["ticks"]  # type: ignore[assignment]
                    settle(0.1)
                    c0, k0 = cpu_sample(), ticks()
                    sent = run_trafgen(left, conf, packets, rate_pps=rate_pps)
                    settle(0.1)
                    c1, k1 = cpu_sample(), ticks()
                n = max(1, sent.sent)
                own = sent.cpu_s * 1e9 + jiffies_ns(
                    k1 - k0 + c1.irq - c0.irq + c1.kthreads - c0.kthreads)
                runs[name].append(Run(busy_ns(c0, c1) / n, own / n, sent.pps,
                                      sent.sent, info["seen"],  # type: ignore[arg-type]
                                      int(info.get("dropped", 0))))  # type: ignore[arg-type]
    finally:
        flow5.close()
    table = _table(runs, packets=packets, rate_pps=rate_pps, reps=reps, frame=frame)
    table.notes.append(f"sitevis and the minimal program are attached as {sitevis.mechanism} "
                       "(the collector's default here), tcpdump through a packet socket")
    return table


def _table(runs: dict[str, list[Run]], *, packets: int, rate_pps: int, reps: int,
           frame: int) -> Table:
    vm = {n: median([r.vm_ns for r in rs]) for n, rs in runs.items()}
    own = {n: median([r.own_ns for r in rs]) for n, rs in runs.items()}
    # Added = median over rounds of (watcher - baseline of the same round): paired, so a
    # slow drift in what else the VM does cancels out.
    added = {n: median([r.vm_ns - b.vm_ns for r, b in zip(rs, runs[NONE], strict=True)])
             for n, rs in runs.items()}
    added_own = {n: median([r.own_ns - b.own_ns
                            for r, b in zip(rs, runs[NONE], strict=True)])
                 for n, rs in runs.items()}
    table = Table(
        f"3. CPU added per packet, whole VM (busy = wall x CPUs - cpuidle residency; {reps} "
        f"interleaved runs "
        f"x {packets} packets of {frame} B at trafgen -b {rate_pps} pps)",
        ["watcher", "achieved rate (kpps)", "VM busy ns/pkt (median)", "min-max",
         "added ns/pkt (paired median)", "x tcpdump's added", "ours+kernel ns/pkt (median)",
         "min-max", "added ns/pkt (paired median)", "x tcpdump's added", "seen / sent",
         "target", "result"],
    )
    ratio = added[SITEVIS] / added[TCPDUMP] if added[TCPDUMP] > 0 else float("inf")
    ratio_own = (added_own[SITEVIS] / added_own[TCPDUMP] if added_own[TCPDUMP] > 0
                 else float("inf"))
    # The send path's own cost varies by ~5-10 % from run to run on this VM, as much as
    # what a watcher adds: judge on a bootstrap interval of the ratio, not on one figure.
    low, high = ratio_interval(runs, "vm_ns")
    low_own, high_own = ratio_interval(runs, "own_ns")
    # The whole-VM figure is what the target is about, and the interval carries its
    # noise. Only when tcpdump shows no added whole-VM CPU at all (the VM was busier in
    # the baseline rounds) is the own-process figure judged instead, and says so.
    none_spread = max(r.vm_ns for r in runs[NONE]) - min(r.vm_ns for r in runs[NONE])
    noisy = added[TCPDUMP] <= 0
    judged_high = high_own if noisy else high
    basis = "ours+kernel (whole VM showed nothing added by tcpdump)" if noisy else "whole VM"
    passed = judged_high <= TARGET_RATIO
    decided = passed or (low_own if noisy else low) > TARGET_RATIO
    for n, rs in runs.items():
        seen = "" if rs[0].seen is None else (
            f"{sum(r.seen or 0 for r in rs)}/{sum(r.sent for r in rs)}"
            + (f" ({sum(r.dropped for r in rs)} dropped by kernel)" if n == TCPDUMP
               else ""))
        is_sv = n == SITEVIS
        table.add(n, f"{median([r.pps for r in rs]) / 1e3:.0f}", f"{vm[n]:.0f}",
                  spread([r.vm_ns for r in rs]),
                  "-" if n == NONE else f"{added[n]:.0f}",
                  "-" if n == NONE else (f"{added[n] / added[TCPDUMP]:.2f}"
                                         if added[TCPDUMP] > 0 else "n/a"),
                  f"{own[n]:.0f}", spread([r.own_ns for r in rs]),
                  "-" if n == NONE else f"{added_own[n]:.0f}",
                  "-" if n == NONE else (f"{added_own[n] / added_own[TCPDUMP]:.2f}"
                                         if added_own[TCPDUMP] > 0 else "n/a"),
                  seen, f"<= {TARGET_RATIO}x tcpdump (90 % interval)" if is_sv else "",
                  ((verdict(passed) if decided else "UNDECIDED")
                   + (" (ours+kernel)" if noisy else "")) if is_sv else "")
    table.checks[f"sitevis adds <= {TARGET_RATIO}x tcpdump's CPU per packet"] = passed
    table.data.update(ratio=ratio, ratio_own=ratio_own, added=added, added_own=added_own,
                      noisy=noisy, interval=(low, high), interval_own=(low_own, high_own))
    table.notes.append(f"sitevis/tcpdump added CPU: {ratio:.2f} (whole VM, 90 % bootstrap "
                       f"interval {low:.2f}-{high:.2f}), {ratio_own:.2f} (ours+kernel, "
                       f"{low_own:.2f}-{high_own:.2f}); verdict on: {basis}, PASS only when "
                       "the whole interval is within the target")
    table.notes.append(f"baseline whole-VM spread {none_spread:.0f} ns/pkt vs tcpdump's added "
                       f"{added[TCPDUMP]:.0f} ns/pkt (other work on this shared VM lands in "
                       "the whole-VM figure)")
    table.notes.append("ours+kernel = CPU time of trafgen and tcpdump + irq/softirq time + "
                       "kernel threads: the BPF programs and tcpdump's kernel-side copy run "
                       "in trafgen's context")
    return table


def ratio_interval(runs: dict[str, list[Run]], field: str, *, draws: int = 2000,
                   seed: int = 1) -> tuple[float, float]:
    """5th-95th percentile of median(sitevis added) / median(tcpdump added) over rounds
    resampled with replacement (a round keeps its four paired runs together)."""
    rounds = list(zip(runs[NONE], runs[SITEVIS], runs[TCPDUMP], strict=True))
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        sample = [rng.choice(rounds) for _ in rounds]
        ours = median([getattr(s, field) - getattr(b, field) for b, s, _ in sample])
        theirs = median([getattr(t, field) - getattr(b, field) for b, _, t in sample])
        ratios.append(ours / theirs if theirs > 0 else float("inf"))
    ratios.sort()
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=150_000, help="packets per second")
    parser.add_argument("--reps", type=int, default=REPS)
    args = parser.parse_args(argv)
    return run_cli(with_sitevis(lambda the_lab, sitevis: measure(
        the_lab, sitevis, packets=args.packets, rate_pps=args.rate, reps=args.reps)))


if __name__ == "__main__":
    sys.exit(main())
