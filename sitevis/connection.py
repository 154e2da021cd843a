"""Which InfluxDB the controller reads: explicit options, or what the rollout recorded.

The monitor play writes <secrets dir>/monitor.json (URL, database, the READ user and its
password, site), the secrets dir being the inventory's sitevis_secrets_dir (default
<inventory>/.secrets), so `sitevis status -i inventory/x` needs nothing else.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sitevis.influx import Influx, InfluxError
from sitevis.inventory import SiteInventory, inventory_path
from sitevis.paths import project_dir


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory",
                        help="read the connection the rollout recorded for this inventory "
                             "(default: ansible.cfg's)")
    parser.add_argument("--url", help="InfluxDB URL (overrides the recorded one)")
    parser.add_argument("--database", help="database (default: recorded, else sitevis)")
    parser.add_argument("--user", help="InfluxDB user (READ is enough)")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password")
    secret.add_argument("--password-file", help="file holding the password")


class UsageError(Exception):
    """Options that contradict each other: one line, exit status 2."""


def site_inventory(args: argparse.Namespace) -> SiteInventory:
    """The inventory of -i (default: ansible.cfg's), which must exist."""
    project = project_dir()
    return SiteInventory(project, inventory_path(project, args.inventory))


def recorded(secrets_dir: Path) -> dict[str, str]:
    """monitor.json in a site's secrets directory ({} when the rollout has not run yet)."""
    path = secrets_dir / "monitor.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise InfluxError(f"{path}: unreadable ({err})") from None


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file:
        try:
            return Path(args.password_file).read_text().strip()
        except OSError as err:
            raise InfluxError(f"--password-file: {err.strerror}: {args.password_file}") from None
    return args.password


def connect(args: argparse.Namespace) -> tuple[Influx, str | None]:
    """The InfluxDB to read and the site recorded with it."""
    if args.user is None and (args.password is not None or args.password_file):
        # The recorded user comes with its own password: a given one would be dropped.
        raise UsageError("--password and --password-file need --user")
    # An explicit --url is a different InfluxDB: nothing recorded for the inventory applies.
    saved = {} if args.url else recorded(site_inventory(args).secrets_dir())
    url = args.url or saved.get("url")
    if not url:
        inventory = args.inventory or "the default inventory"
        raise InfluxError(f"no InfluxDB known for {inventory}: run `sitevis rollout` first, "
                          "or give --url")
    if args.user is None:
        user, password = saved.get("username"), saved.get("password")
    else:
        user, password = args.user, _password(args)
    database = args.database or saved.get("database") or "sitevis"
    return Influx(url, database, user, password), saved.get("site")
