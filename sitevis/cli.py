"""The `sitevis` command: roll the site out, verify it, look at it."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console

from sitevis import __version__
from sitevis.connection import add_connection_options, connect
from sitevis.influx import InfluxError
from sitevis.paths import ProjectNotFound, project_dir
from sitevis.progress import Progress, print_summary
from sitevis.runner import run_playbook


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; 120 columns in logs and CI, where rich would assume 80."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 120)


def _playbook_command(args: argparse.Namespace, playbook: str, title: str,
                      extravars: dict | None = None) -> int:
    console = make_console(stderr=args.json)
    project = project_dir()
    started = time.monotonic()
    with Progress(console, title) as progress:
        result = run_playbook(
            project, playbook, inventory=args.inventory, limit=args.limit,
            tags=getattr(args, "tags", None), check=getattr(args, "check", False),
            extravars=extravars, listener=progress.update,
        )
    print_summary(console, result, time.monotonic() - started)
    if args.json:
        print(result.to_json())
    return 0 if result.succeeded else 2


def cmd_rollout(args: argparse.Namespace) -> int:
    return _playbook_command(args, "site.yml", "rollout" + (" (check)" if args.check else ""))


def cmd_verify(args: argparse.Namespace) -> int:
    return _playbook_command(args, "verify.yml", "verify", extravars={
        "sitevis_verify_within": args.within, "sitevis_verify_timeout": args.timeout})


def cmd_status(args: argparse.Namespace) -> int:
    from sitevis import status

    console = make_console()
    influx, recorded_site = connect(args)
    site = args.site or recorded_site
    statuses = status.collect(influx, site, window=args.window)
    if not statuses:
        print(f"sitevis status: no collector has written to {influx.url} "
              f"({influx.database}) yet", file=sys.stderr)
        return 1
    title = f"site {site or '(all)'}: collectors, last {args.window}"
    console.print(status.table(statuses, title, args.stale_after))
    quiet = status.silent(statuses, args.stale_after)
    if quiet:
        console.print(f"[bold red]silent:[/] {', '.join(quiet)}")
    return 3 if quiet else 0


def cmd_top(args: argparse.Namespace) -> int:
    from sitevis import talkers

    influx, recorded_site = connect(args)
    site = args.site or recorded_site
    rows = talkers.top(influx, args.by, args.since, args.dir, site, args.limit)
    if not rows:
        print(f"sitevis top: no flows in the last {args.since} at {influx.url}", file=sys.stderr)
        return 1
    make_console().print(talkers.table(rows, args.by, f"top {args.by}, {args.dir}, last "
                                                 f"{args.since} (site {site or 'all'})"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sitevis import report  # matplotlib loads only for this command

    try:
        return report.run(args)
    except (report.ReportError, report.InfluxError) as err:
        print(f"sitevis report: {err}", file=sys.stderr)
        return 1


def talkers_groupings() -> list[str]:
    from sitevis.talkers import GROUPINGS

    return list(GROUPINGS)


def _site_query_parser(sub: argparse._SubParsersAction, name: str,
                       summary: str) -> argparse.ArgumentParser:
    """A sub-command that queries one site's data: connection options and --site."""
    parser = sub.add_parser(name, help=summary)
    add_connection_options(parser)
    parser.add_argument("--site", help="only this site (default: the inventory's)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sitevis", description="sitevis site controller")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rollout = sub.add_parser("rollout", help="provision every box and the monitor (site.yml)")
    rollout.add_argument("-i", "--inventory", help="inventory (default: ansible.cfg's, "
                         "inventory/local = this machine)")
    rollout.add_argument("--limit", help="only these hosts or groups")
    rollout.add_argument("--tags", help="only tasks with these tags")
    rollout.add_argument("--check", action="store_true", help="dry run: change nothing")
    rollout.add_argument("--json", action="store_true",
                         help="print a machine-readable result on stdout (display on stderr)")
    rollout.set_defaults(func=cmd_rollout)

    verify = sub.add_parser("verify", help="check every box's collector wrote data recently "
                            "(verify.yml); names the silent boxes")
    verify.add_argument("-i", "--inventory", help="inventory (default: ansible.cfg's)")
    verify.add_argument("--limit", help="only these boxes")
    verify.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    verify.add_argument("--within", type=int, default=60,
                        help="seconds: data older than this does not count (default 60)")
    verify.add_argument("--timeout", type=int, default=90,
                        help="seconds to wait for a box's data (default 90)")
    verify.set_defaults(func=cmd_verify)

    status = _site_query_parser(sub, "status",
                                "per box: last seen, coverage, overflows, spool")
    status.add_argument("--window", default="5m", help="time window for sums (e.g. 15m)")
    status.add_argument("--stale-after", type=float, default=60.0,
                        help="seconds without data after which a box counts as silent")
    status.set_defaults(func=cmd_status)

    top = _site_query_parser(sub, "top", "site-wide top talkers over a time range")
    top.add_argument("--since", default="1h", help="time range, e.g. 15m, 6h, 7d")
    top.add_argument("--by", choices=sorted(talkers_groupings()), default="talkers")
    top.add_argument("--dir", choices=["ingress", "egress"], default="ingress",
                     help="count each flow once: as received (default) or as sent")
    top.add_argument("--limit", type=int, default=15)
    top.set_defaults(func=cmd_top)

    report = sub.add_parser("report", help="draw the site overview from InfluxDB to a PNG")
    add_connection_options(report)
    report.add_argument("--rp", default="auto",
                        help="retention policy: auto (as the dashboards: by time range), "
                             "raw or long")
    report.add_argument("--site", help="only this site (default: the inventory's, else all)")
    report.add_argument("--since", default="1h", help="start, this long ago (e.g. 6h)")
    report.add_argument("--until", default="0", help="end, this long ago (default now)")
    report.add_argument("-o", "--output", default="sitevis-report.png", help="PNG to write")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ProjectNotFound, InfluxError) as err:
        print(f"sitevis {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sitevis: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
