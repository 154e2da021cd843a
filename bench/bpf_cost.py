"""Benchmark 1: ns per packet of three TC egress programs, from kernel BPF stats.

bare per-CPU counter (bench/counter.c), minimal 5-tuple flow program (bench/flow5.c)
and sitevis's full program (all parsing, overflow bucket, sampling at the collector's
default rate), each alone on the TC egress hook of the sending veth, traffic from
trafgen at full speed through the qdisc path. Runs are interleaved A,B,C,A,B,C,... and
the medians compared. kernel.bpf_stats_enabled=1 only while trafgen sends.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from bench.common import (
    Lab,
    Sitevis,
    Table,
    bpf_stats,
    counter_program,
    flow5_program,
    median,
    prog_run_stats,
    run_cli,
    run_trafgen,
    settle,
    spread,
    total,
    verdict,
    with_sitevis,
)

TARGET_RATIO = 1.2
SRCS, PORTS = 64, 63  # 4032 flows, coprime periods


@dataclass
class Run:
    ns_per_packet: float
    run_cnt: int
    counted: int
    sent: int
    pps: float


def measure(the_lab: Lab, sitevis: Sitevis, *, packets: int = 700_000, reps: int = 9,
            frame: int = 64, cpus: int = 1, srcs: int = SRCS, ports: int = PORTS,
            rate_pps: int | None = None) -> Table:
    left = the_lab.left
    conf = the_lab.conf(frame, srcs, ports)
    counter, flow5 = counter_program(), flow5_program(sitevis.program.settings.table_size)
    try:
        subjects = {
            "bare counter (bench/counter.c)": (counter.fd, counter.counted, counter.reset,
                                               lambda: the_lab.attach_ref(left, counter.fd,
                                                                          "bench_counter")),
            "minimal 5-tuple flow (bench/flow5.c)": (
                flow5.fd, flow5.counted, flow5.reset,
                lambda: the_lab.attach_ref(left, flow5.fd, "bench_flow5")),
            "sitevis full (bpf/sitevis.c)": (
                sitevis.fd("egress"), lambda: total(sitevis.drain(), "egress")[0],
                sitevis.drain, lambda: sitevis.attach(left, ("egress",))),
        }
        runs: dict[str, list[Run]] = {name: [] for name in subjects}
        how = ""
        for _ in range(reps):
            for name, (fd, counted, reset, attach) in subjects.items():
                reset()
                detach = attach()
                try:
                    t0, c0 = prog_run_stats(fd)
                    with bpf_stats() as how:
                        sent = run_trafgen(left, conf, packets, cpus=cpus, rate_pps=rate_pps)
                    t1, c1 = prog_run_stats(fd)
                finally:
                    detach()
                settle(0.1)
                runs[name].append(Run((t1 - t0) / max(1, c1 - c0), c1 - c0, counted(),
                                      sent.sent, sent.pps))
    finally:
        counter.close()
        flow5.close()
    table = _table(runs, packets=packets, reps=reps, frame=frame,
                   flows=min(packets, srcs * ports), rate_pps=rate_pps)
    table.notes.append(f"BPF stats on only while trafgen sent, via {how} (closed after)")
    return table


def _table(runs: dict[str, list[Run]], *, packets: int, reps: int, frame: int,
           flows: int, rate_pps: int | None) -> Table:
    names = list(runs)
    med = {n: median([r.ns_per_packet for r in runs[n]]) for n in names}
    minimal = med[names[1]]
    table = Table(
        f"1. BPF cost per packet at TC egress (bpf_stats run_time_ns/run_cnt; {reps} "
        f"interleaved runs x {packets} packets of {frame} B, {flows} flows, trafgen -q"
        + (f" -b {rate_pps}pps)" if rate_pps else ", full speed)"),
        ["program", "ns/packet (median)", "min-max", "x minimal", "counted / sent",
         "trafgen rate (Mpps)", "target", "result"],
    )
    exact = True
    for n in names:
        counted = sum(r.counted for r in runs[n])
        sent = sum(r.sent for r in runs[n])
        cnt_ok = all(r.run_cnt == r.sent for r in runs[n])
        exact &= counted == sent and cnt_ok
        ratio = med[n] / minimal if minimal else float("inf")
        is_full = n is names[2]
        table.add(n, f"{med[n]:.0f}", spread([r.ns_per_packet for r in runs[n]]),
                  f"{ratio:.2f}", f"{counted}/{sent}",
                  f"{median([r.pps for r in runs[n]]) / 1e6:.2f}",
                  f"<= {TARGET_RATIO}x minimal" if is_full else "",
                  verdict(ratio <= TARGET_RATIO) if is_full else "")
    ratio = med[names[2]] / minimal if minimal else float("inf")
    table.checks[f"sitevis <= {TARGET_RATIO}x minimal flow program"] = ratio <= TARGET_RATIO
    fastest = {n: min(r.ns_per_packet for r in runs[n]) for n in names}
    paired = median([a.ns_per_packet / b.ns_per_packet
                     for a, b in zip(runs[names[2]], runs[names[1]], strict=True)])
    table.notes.append(f"other views of the same runs: median of per-round ratios "
                       f"{paired:.2f}, ratio of the fastest runs "
                       f"{fastest[names[2]] / fastest[names[1]]:.2f} (the verdict uses the "
                       "ratio of medians)")
    table.data.update(ratio=ratio, medians=med, exact=exact, paired=paired)
    table.notes.append("counted = what each program's own maps hold; run_cnt equalled "
                       f"trafgen's sent count in every run: {exact}")
    table.notes.append("sitevis: default collector settings (65536-entry shared flow table, "
                       "sample_rate 1000, limit 100/s); only the egress filter attached")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bpf_cost", description=__doc__)
    parser.add_argument("--packets", type=int, default=700_000)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--frame", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--rate", type=int, default=None,
                        help="packets per second (default: as fast as trafgen can)")
    args = parser.parse_args(argv)
    return run_cli(with_sitevis(lambda the_lab, sitevis: measure(
        the_lab, sitevis, packets=args.packets, reps=args.reps, frame=args.frame,
        cpus=args.cpus, rate_pps=args.rate)))


if __name__ == "__main__":
    sys.exit(main())
