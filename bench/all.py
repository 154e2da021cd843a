"""Run every sitevis benchmark in one go (one netns pair, one load of sitevis) and print
one table per benchmark, then a summary of the targets. Bounded: gives up after
--deadline seconds (default 2400), cleaning up namespaces and kernel.bpf_stats_enabled.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from bench import accuracy, bpf_cost, cpu, userspace
from bench.common import BenchError, Sitevis, Table, lab, verdict


def _deadline(seconds: int) -> None:
    def expire(_signum: int, _frame: object) -> None:
        raise BenchError(f"benchmarks did not finish within {seconds} s")
    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def run_all(*, quick: bool = False) -> list[Table]:
    """quick: tiny parameters (seconds, not minutes), for a smoke run."""
    tables: list[Table] = []

    def show(table: Table) -> None:
        tables.append(table)
        print(table.render(), end="\n\n", flush=True)

    with lab() as the_lab:
        sitevis = Sitevis(the_lab)
        try:
            if quick:
                # 1000 flows: 1000 source addresses, one port
                show(bpf_cost.measure(the_lab, sitevis, packets=4_000, reps=1, srcs=1000,
                                      ports=1))
                show(accuracy.measure(the_lab, sitevis, packets=4_000, srcs=1000, ports=1,
                                      cpus=(1,), bypass_packets=2_000))
                show(cpu.measure(the_lab, sitevis, rate_pps=20_000, reps=1))
            else:
                show(bpf_cost.measure(the_lab, sitevis))
                show(accuracy.measure(the_lab, sitevis))
                show(cpu.measure(the_lab, sitevis))
        finally:
            sitevis.close()
        show(userspace.measure(the_lab, flows=1000 if quick else 100_000,
                               default_top_n=not quick))
    return tables


def summary(tables: list[Table], seconds: float) -> Table:
    table = Table(f"Targets (issue 3, Benchmark), all measured in this run of {seconds:.0f} s",
                  ["benchmark", "target", "result"])
    for t in tables:
        for target, ok in t.checks.items():
            table.add(t.title.split(" ", 1)[0].rstrip("."), target, verdict(ok))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny parameters (smoke run)")
    parser.add_argument("--deadline", type=int, default=2400)
    args = parser.parse_args(argv)
    _deadline(args.deadline)
    start = time.monotonic()
    try:
        tables = run_all(quick=args.quick)
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
    result = summary(tables, time.monotonic() - start)
    print(result.render())
    return 0 if all(t.passed for t in tables) else 1


if __name__ == "__main__":
    sys.exit(main())
