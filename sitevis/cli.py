"""The `sitevis` command: roll the site out, verify it, look at it."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from sitevis import __version__, query
from sitevis.connection import UsageError, add_connection_options, connect, site_inventory
from sitevis.influx import InfluxError
from sitevis.inventory import InventoryError
from sitevis.options import DURATION, END, ROWS, RP, SITE, OneLineParser
from sitevis.paths import ProjectNotFound, project_dir
from sitevis.portal.rollouts import client as portal_client
from sitevis.progress import Progress, print_summary
from sitevis.retention import AUTO
from sitevis.runner import RunResult, run_playbook


def make_console(stderr: bool = False) -> Console:
    """A terminal's own width; 120 columns in logs and CI, where rich would assume 80."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 120)


def _playbook_command(args: argparse.Namespace, playbook: str, title: str,
                      extravars: dict | None = None) -> int:
    console = make_console(stderr=args.json)
    project = project_dir()
    started, began = time.monotonic(), datetime.now(UTC)
    with Progress(console, title) as progress:
        result = run_playbook(
            project, playbook, inventory=args.inventory, limit=args.limit,
            tags=getattr(args, "tags", None), check=getattr(args, "check", False),
            extravars=extravars, listener=progress.update,
        )
    if result.no_host_matched:
        print(f"sitevis {args.command}: {result.no_host_message()}", file=sys.stderr)
    else:
        print_summary(console, result, time.monotonic() - started)
    _record_in_portal(args, playbook, project, result, began)
    if args.json:
        print(result.to_json())
    return 0 if result.succeeded else 2


def _record_in_portal(args: argparse.Namespace, playbook: str, project: Path,
                      result: RunResult, began: datetime) -> None:
    """The run in the portal's history when SITEVIS_PORTAL_URL is set (client.py)."""
    run = {"playbook": playbook.removesuffix(".yml"), "limit": args.limit or "",
           "tags": getattr(args, "tags", None) or "", "check": getattr(args, "check", False)}
    commit = portal_client.git_head(project) or f"sitevis {__version__}"
    warning = portal_client.record(run, result, began, datetime.now(UTC), commit)
    if warning:
        print(f"sitevis {args.command}: warning: {warning}", file=sys.stderr)


def cmd_rollout(args: argparse.Namespace) -> int:
    return _playbook_command(args, "site.yml", "rollout" + (" (check)" if args.check else ""))


def cmd_verify(args: argparse.Namespace) -> int:
    return _playbook_command(args, "verify.yml", "verify", extravars={
        "sitevis_verify_within": args.within, "sitevis_verify_timeout": args.timeout})


def limited_boxes(args: argparse.Namespace) -> list[str] | None:
    """The box names --limit selects in the inventory (None: no --limit, every box)."""
    if args.limit is None:
        return None
    inventory = site_inventory(args)
    boxes = inventory.boxes(args.limit)
    if not boxes:
        raise UsageError(f"--limit {args.limit} selects no host of group boxes in "
                         f"{inventory.path}")
    return boxes


def cmd_status(args: argparse.Namespace) -> int:
    from sitevis import status

    console = make_console()
    boxes = limited_boxes(args)
    influx, recorded_site = connect(args)
    site = args.site or recorded_site
    statuses = status.collect(influx, site, window=args.window, boxes=boxes)
    if not statuses:
        print(f"sitevis status: no collector has written to {influx.url} "
              f"({influx.database}) yet", file=sys.stderr)
        return 1
    title = f"site {site or '(all)'}: collectors, last {args.window.text}"
    if boxes is not None:
        title += f", --limit {args.limit}"
    console.print(status.table(statuses, title, args.stale_after))
    quiet = status.silent(statuses, args.stale_after)
    if quiet:
        console.print(f"[bold red]silent:[/] {', '.join(quiet)}")
    return 3 if quiet else 0


def cmd_top(args: argparse.Namespace) -> int:
    from sitevis import retention, talkers

    influx, recorded_site = connect(args)
    site = args.site or recorded_site
    served = None if args.now or args.rp != AUTO else \
        talkers.ahead(influx, args.by, args.since, args.dir, site, args.limit)
    if served and served[0]:
        rows, listed = served
        at = time.strftime("%H:%M:%S UTC", time.gmtime(listed.end_ms / 1000))
        _print_top(rows, args, f"site {listed.site}, computed ahead by the portal at {at}; "
                               "--now sums the flow series now")
        return 0
    now = int(time.time())
    # The policy that serves this range, as the dashboards and report choose it; talkers
    # (addresses) only from a policy that keeps them.
    start = now - args.since.seconds
    rp = (retention.resolve_talkers(influx, args.rp, start) if args.by == "talkers"
          else retention.resolve(influx, args.rp, start, now))
    rows = talkers.top(influx, args.by, args.since, args.dir, site, args.limit, rp=rp)
    policy = rp or "default policy"
    if not rows:
        print(f"sitevis top: no flows in the last {args.since.text} at {influx.url} "
              f"({policy})", file=sys.stderr)
        return 1
    _print_top(rows, args, f"site {site or 'all'}, {policy}")
    return 0


def _print_top(rows: list, args: argparse.Namespace, source: str) -> None:
    """The heading on its own line (a table's title wraps at the table's width), then
    the rows."""
    from sitevis import talkers

    console = make_console()
    console.print(f"top {args.by}, {args.dir}, last {args.since.text} ({source})",
                  highlight=False, soft_wrap=True)
    console.print(talkers.table(rows, args.by))


def cmd_report(args: argparse.Namespace) -> int:
    from sitevis import report  # matplotlib loads only for this command

    try:
        return report.run(args)
    except (report.ReportError, report.InfluxError) as err:
        print(f"sitevis report: {err}", file=sys.stderr)
        return 1


def cmd_portal(args: argparse.Namespace) -> int:
    from sitevis.portal.manage import main as portal_main  # Django loads only here

    return portal_main(args.portal_args)


def talkers_groupings() -> list[str]:
    from sitevis.talkers import GROUPINGS

    return list(GROUPINGS)


LIMIT_HELP = ("only these hosts: an Ansible pattern (names, groups, globs, ~regex, "
              "!exclude, &intersect; comma-separated)")


def _site_query_parser(sub: argparse._SubParsersAction, name: str,
                       summary: str) -> argparse.ArgumentParser:
    """A sub-command that queries one site's data: connection options and --site."""
    parser = sub.add_parser(name, help=summary)
    add_connection_options(parser)
    parser.add_argument("--site", type=SITE, help="only this site (default: the inventory's)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sitevis", description="sitevis site controller")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rollout = sub.add_parser("rollout", help="provision every box and the monitor (site.yml)")
    rollout.add_argument("-i", "--inventory", help="inventory path (default: ansible.cfg's, "
                         "inventory/local = this machine)")
    rollout.add_argument("-l", "--limit", help=LIMIT_HELP)
    rollout.add_argument("--tags", help="only tasks with these tags")
    rollout.add_argument("--check", action="store_true", help="dry run: change nothing")
    rollout.add_argument("--json", action="store_true",
                         help="print a machine-readable result on stdout (display on stderr)")
    rollout.set_defaults(func=cmd_rollout)

    verify = sub.add_parser("verify", help="check every box's collector wrote data recently "
                            "(verify.yml); names the silent boxes")
    verify.add_argument("-i", "--inventory", help="inventory path (default: ansible.cfg's)")
    verify.add_argument("-l", "--limit", help=f"{LIMIT_HELP}; only its boxes are verified")
    verify.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    verify.add_argument("--within", type=int, default=60,
                        help="seconds: data older than this does not count (default 60)")
    verify.add_argument("--timeout", type=int, default=90,
                        help="seconds to wait for a box's data (default 90)")
    verify.set_defaults(func=cmd_verify)

    status = _site_query_parser(sub, "status",
                                "per box: last seen, coverage, overflows, spool")
    status.add_argument("-l", "--limit",
                        help=f"{LIMIT_HELP}, resolved in the inventory to the boxes it "
                             "selects (collector_box, default the host name); those are "
                             "shown, never-seen ones as silent")
    status.add_argument("--window", type=DURATION, default=query.duration("5m"),
                        help="time window for sums (e.g. 15m)")
    status.add_argument("--stale-after", type=float, default=60.0,
                        help="seconds without data after which a box counts as silent")
    status.set_defaults(func=cmd_status)

    top = _site_query_parser(sub, "top", "site-wide top talkers over a time range")
    top.add_argument("--since", type=DURATION, default=query.duration("1h"),
                     help="time range, e.g. 15m, 6h, 7d")
    top.add_argument("--by", choices=sorted(talkers_groupings()), default="talkers")
    top.add_argument("--dir", choices=["ingress", "egress"], default="ingress",
                     help="count each flow once: as received (default) or as sent")
    top.add_argument("--limit", type=ROWS, default=15, help="rows to show (default 15)")
    top.add_argument("--now", action="store_true",
                     help="sum the flow series now, even for a range the portal computes "
                          "ahead (1h, 6h, 24h: read from its toplist, at most 15 min old)")
    top.add_argument("--rp", type=RP, default=AUTO,
                     help="retention policy: auto (as the dashboards: by time range), "
                          "raw or long")
    top.set_defaults(func=cmd_top)

    report = sub.add_parser("report", help="draw the site overview from InfluxDB to a PNG")
    add_connection_options(report)
    report.add_argument("--rp", type=RP, default=AUTO,
                        help="retention policy: auto (as the dashboards: by time range), "
                             "raw or long")
    report.add_argument("--site", type=SITE,
                        help="only this site (default: the inventory's, else all)")
    report.add_argument("--since", type=DURATION, default=query.duration("1h"),
                        help="start, this long ago (e.g. 6h)")
    report.add_argument("--until", type=END, default=query.duration("0", allow_zero=True),
                        help="end, this long ago (default now)")
    report.add_argument("-o", "--output", default="sitevis-report.png", help="PNG to write")
    report.set_defaults(func=cmd_report)

    portal = sub.add_parser(
        "portal", help="the web portal: serve, migrate, createuser, import -i INVENTORY, "
        "refresh (config: $SITEVIS_PORTAL_CONFIG)", add_help=False)
    portal.add_argument("portal_args", nargs=argparse.REMAINDER,
                        help="a Django management command and its options")
    portal.set_defaults(func=cmd_portal)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, InventoryError, query.QueryError) as err:
        print(f"sitevis {args.command}: {err}", file=sys.stderr)
        return 2
    except (ProjectNotFound, InfluxError) as err:
        print(f"sitevis {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sitevis: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
