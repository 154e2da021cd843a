"""Benchmark 2: packets counted / packets sent by sitevis at full trafgen speed.

sitevis (default settings) is attached to the sender's TC egress and, with a second
filter of the same program, to the receiver's TC ingress. trafgen sends N frames of
64 and 512 bytes over many flows as fast as it can, through the qdisc path (-q):
without -q trafgen sets PACKET_QDISC_BYPASS and TC egress sees nothing, which one
extra run shows (informational). Counts are sitevis's drained per-interface totals,
compared with trafgen's sent count and the kernel's interface counters.
"""

from __future__ import annotations

import argparse
import sys

from bench.common import (
    Lab,
    Sitevis,
    Table,
    flow_sum,
    run_cli,
    run_trafgen,
    settle,
    total,
    verdict,
    with_sitevis,
)

SRCS, PORTS = 64, 63


def measure(the_lab: Lab, sitevis: Sitevis, *, packets: int = 1_000_000,
            sizes: tuple[int, ...] = (64, 512), cpus: tuple[int, ...] = (1, 2),
            srcs: int = SRCS,
            ports: int = PORTS, bypass_packets: int = 100_000) -> Table:
    left, right = the_lab.left, the_lab.right
    table = Table(
        f"2. Counting accuracy at full trafgen speed ({packets} packets per size, "
        f"{min(packets, srcs * ports)} flows): sitevis totals vs trafgen and kernel counters",
        ["frame", "trafgen mode", "sending CPUs", "rate (Mpps)", "sent (trafgen)",
         "egress: sitevis", "egress: veth tx", "ingress (peer): sitevis", "ingress (peer): veth rx",
         "sitevis bytes = sentxsize", "flows sum = totals", "counted/sent", "target",
         "result"],
    )
    runs = [(size, True, packets, n) for n in cpus for size in sizes]
    if bypass_packets:
        runs.append((sizes[0], False, bypass_packets, cpus[0]))
    remove = [sitevis.attach(left, ("egress",)), sitevis.attach(right, ("ingress",))]
    results: dict[str, float] = {}
    flows_seen: dict[str, int] = {}
    try:
        for size, qdisc, count, n_cpus in runs:
            conf = the_lab.conf(size, srcs, ports)
            sitevis.drain()
            before = the_lab.counters(left), the_lab.counters(right)
            sent = run_trafgen(left, conf, count, qdisc_path=qdisc, cpus=n_cpus)
            settle(0.3)
            got = sitevis.drain()
            after = the_lab.counters(left), the_lab.counters(right)
            tx = after[0]["tx_packets"] - before[0]["tx_packets"]
            rx = after[1]["rx_packets"] - before[1]["rx_packets"]
            rx_drop = after[1]["rx_dropped"] - before[1]["rx_dropped"]
            eg_p, eg_b = total(got, "egress")
            in_p, in_b = total(got, "ingress")
            fl_p, fl_b, n_flows = flow_sum(got, "egress")
            fi_p, fi_b, _ = flow_sum(got, "ingress")
            bytes_ok = eg_b == sent.sent * size and in_b == rx * size
            sums_ok = (fl_p, fl_b) == (eg_p, eg_b) and (fi_p, fi_b) == (in_p, in_b)
            exact = (eg_p == sent.sent == count and in_p == rx and bytes_ok and sums_ok
                     and got.unaccounted == 0)
            share = eg_p / sent.sent if sent.sent > 0 else 0.0
            mode = "-q (qdisc path)" if qdisc else "no -q (QDISC_BYPASS)"
            drop = f" (+{rx_drop} dropped)" if rx_drop else ""
            if qdisc:
                label = f"{size}" if n_cpus == cpus[0] else f"{size}/{n_cpus}cpu"
                results[label] = share
                flows_seen[label] = n_flows
                table.checks[f"{size}-byte frames from {n_cpus} CPU(s) counted exactly "
                             "(100 %)"] = exact
                table.add(f"{size} B", mode, n_cpus, f"{sent.pps / 1e6:.2f}", sent.sent, eg_p, tx,
                          in_p, f"{rx}{drop}", bytes_ok, sums_ok, f"{100 * share:.4f} %",
                          "100 %", verdict(exact))
            else:
                table.add(f"{size} B", mode, n_cpus, f"{sent.pps / 1e6:.2f}", sent.sent, eg_p,
                          tx, in_p, f"{rx}{drop}", "", "", f"{100 * share:.4f} %",
                          "info", "expected 0 at egress")
    finally:
        for rm in remove:
            rm()
    table.data["shares"] = results
    table.data["flows"] = flows_seen
    table.notes.append("trafgen -q disables PACKET_QDISC_BYPASS so frames pass the TC egress "
                       "hook; the peer's ingress count is a second, independent check")
    table.notes.append("the last row repeats the run without -q: TC egress is bypassed "
                       "(sitevis sees 0, the veth's tx counter still counts) — the "
                       "collector's coverage field (BPF totals / kernel counters) shows it")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2],
                        help="trafgen sending CPUs; one pass per value")
    args = parser.parse_args(argv)
    return run_cli(with_sitevis(lambda the_lab, sitevis: measure(
        the_lab, sitevis, packets=args.packets, cpus=tuple(args.cpus))))


if __name__ == "__main__":
    sys.exit(main())
