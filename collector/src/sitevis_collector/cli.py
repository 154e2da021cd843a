"""sitevis-collector: run | check | once | top | hooks | cleanup. User errors are one line
and exit != 0."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable

from sitevis_collector import __version__
from sitevis_collector.config import Config, ConfigError, load_config
from sitevis_collector.errors import KernelError
from sitevis_collector.export.spool import SpoolUnusable

log = logging.getLogger("sitevis_collector")

EXIT_CONFIG = 2
EXIT_KERNEL = 3
EXIT_NOT_READY = 4


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("%s: finishing the current interval", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from sitevis_collector.agent import Agent, run_loop
    from sitevis_collector.export.budget_state import BudgetKeeper
    from sitevis_collector.export.delivery import InfluxWriter

    writer = InfluxWriter(cfg.influxdb, cfg.spool)
    stop = _stop_on_signals()
    try:
        agent = Agent(cfg, reconcile_interval=args.reconcile)
    except BaseException:
        writer.close(timeout=args.flush_timeout)
        raise
    # The series budget carries over restarts (export/budget_state.py).
    keeper = BudgetKeeper(agent.budget, cfg.spool.dir)
    keeper.load()
    try:
        agent.start()
        log.info("collecting every %ss from %s into %s/%s", cfg.interval,
                 ", ".join(sorted(agent.attached.values())) or "no interface yet",
                 cfg.influxdb.url, cfg.influxdb.database)
        run_loop(agent, writer.submit, stop, stats=writer.counters,
                 after=keeper.after_interval)
    finally:
        keeper.save()
        agent.close()
        delivered = writer.close(timeout=args.flush_timeout)
        if delivered:
            log.info("everything collected was delivered to %s", cfg.influxdb.url)
        else:
            log.warning("not delivered within %ss at exit (last error: %s): the points "
                        "wait in %s for the next start", args.flush_timeout,
                        writer.last_error or "none", cfg.spool.dir)
    return 0


def cmd_once(cfg: Config, args: argparse.Namespace) -> int:
    from sitevis_collector.agent import Agent
    from sitevis_collector.export.lineproto import encode

    stop = _stop_on_signals()
    agent = Agent(cfg)
    try:
        agent.start()
        stop.wait(cfg.interval)
        points = agent.collect()
    finally:
        agent.close()
    sys.stdout.write("".join(encode(p) + "\n" for p in points))
    return 0


def cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    from sitevis_collector.commands.readiness import run_all

    if args.config_only:
        print(f"{cfg.source}: config ok")
        return 0
    results = run_all(influxdb_url=None if args.no_influxdb else cfg.influxdb.url)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"{cfg.source}: config ok; {len(results) - len(failed)} of {len(results)} "
          "checks passed")
    return EXIT_NOT_READY if failed else 0


def cmd_top(cfg: Config, args: argparse.Namespace) -> int:
    from sitevis_collector.commands.top import run_top

    return run_top(cfg, refresh=args.refresh, rows=args.rows, stop=_stop_on_signals(),
                   iterations=args.iterations)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from sitevis_collector.hooks.cleanup import remove_all

    removed = remove_all(args.interface, force=args.force)
    for ifname, count in sorted(removed.items()):
        print(f"{ifname}: removed {count} sitevis filter(s)")
    print(f"cleanup: {sum(removed.values())} removed from {len(removed)} interface(s)")
    if not args.force:
        from sitevis_collector.hooks.cleanup import list_attached

        running = sorted({(ifname, owner) for ifname, _, _, owner in
                          list_attached(args.interface) if owner.startswith("pid ")})
        for ifname, owner in running:
            print(f"{ifname}: left the programs of the running collector {owner} "
                  "(--force removes them too)")
    return 0


def cmd_hooks(args: argparse.Namespace) -> int:
    from sitevis_collector.hooks.cleanup import list_attached

    found = list_attached(args.interface)
    for ifname, direction, mechanism, owner in found:
        print(f"{ifname}\t{direction}\t{mechanism}\t{owner}")
    return 0 if found or not args.expect else 1


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "run": cmd_run, "once": cmd_once, "check": cmd_check, "top": cmd_top,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sitevis-collector",
                                     description="sitevis box agent (eBPF → InfluxDB)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("-c", "--config", required=True, help="YAML config file")
        return p

    run = command("run", "trace the matching interfaces and ship to InfluxDB until SIGTERM")
    run.add_argument("--flush-timeout", type=float, default=10.0,
                     help="seconds to deliver the last interval at exit (rest is spooled)")
    run.add_argument("--reconcile", type=float, default=30.0,
                     help="seconds between full interface reconciles")
    command("once", "trace one interval and print it as line protocol on stdout")
    check = command("check", "check the config and this kernel's readiness")
    check.add_argument("--no-influxdb", action="store_true", help="skip the InfluxDB check")
    check.add_argument("--config-only", action="store_true",
                       help="validate the config file only (used by the rollout)")
    top = command("top", "live table of the top flows by rate (like iftop)")
    top.add_argument("--refresh", type=float, default=2.0, help="seconds between updates")
    top.add_argument("--rows", type=int, default=20, help="flows to show")
    top.add_argument("--iterations", type=int, default=0,
                     help="stop after this many updates (0: until Ctrl-C)")
    cleanup = sub.add_parser("cleanup", help="remove the sitevis programs of collectors "
                             "that are gone from this namespace's interfaces (uninstall, or "
                             "after a crash); no config")
    cleanup.add_argument("--interface", default="*", help="only interfaces matching this glob")
    cleanup.add_argument("--force", action="store_true",
                         help="also remove the programs of collectors still running")
    hooks = sub.add_parser("hooks", help="list the sitevis programs attached in this "
                           "namespace: interface, direction, tcx|clsact|xdp; no config")
    hooks.add_argument("--interface", default="*", help="only interfaces matching this glob")
    hooks.add_argument("--expect", action="store_true",
                       help="exit 1 when none is attached")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command in ("cleanup", "hooks"):
        try:
            return cmd_cleanup(args) if args.command == "cleanup" else cmd_hooks(args)
        except KernelError as err:
            print(f"sitevis-collector: {err}", file=sys.stderr)
            return EXIT_KERNEL
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        print(f"sitevis-collector: {err}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return COMMANDS[args.command](cfg, args)
    except (KernelError, SpoolUnusable) as err:
        print(f"sitevis-collector: {err}", file=sys.stderr)
        return EXIT_KERNEL


if __name__ == "__main__":
    sys.exit(main())
