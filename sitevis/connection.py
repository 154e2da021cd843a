"""Which InfluxDB the controller reads: explicit options, or what the rollout recorded.

The monitor play writes <secrets dir>/monitor.json (URL, database, the READ user and its
password, site) next to the inventory, so `sitevis status -i inventory/x` needs nothing else.
"""

from __future__ import annotations

import argparse
import configparser
import json
from pathlib import Path

from sitevis.influx import Influx, InfluxError
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


def default_inventory(project: Path) -> Path:
    config = configparser.ConfigParser()
    config.read(project / "ansible.cfg")
    return project / config.get("defaults", "inventory", fallback="inventory/local")


def recorded(inventory: Path) -> dict[str, str]:
    """monitor.json of an inventory ({} when the rollout has not run yet)."""
    directory = inventory if inventory.is_dir() else inventory.parent
    path = directory / ".secrets" / "monitor.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise InfluxError(f"{path}: unreadable ({err})") from None


def connect(args: argparse.Namespace) -> tuple[Influx, str | None]:
    """The InfluxDB to read and the site recorded with it."""
    inventory = Path(args.inventory) if args.inventory else default_inventory(project_dir())
    # An explicit --url is a different InfluxDB: nothing recorded for the inventory applies.
    saved = {} if args.url else recorded(inventory.resolve())
    url = args.url or saved.get("url")
    if not url:
        raise InfluxError(f"no InfluxDB known for {inventory}: run `sitevis rollout` first, "
                          "or give --url")
    password = args.password
    if args.password_file:
        try:
            password = Path(args.password_file).read_text().strip()
        except OSError as err:
            raise InfluxError(f"--password-file: {err.strerror}: {args.password_file}") from None
    if args.user is None and saved:
        user, password = saved.get("username"), saved.get("password")
    else:
        user = args.user
    database = args.database or saved.get("database") or "sitevis"
    return Influx(url, database, user, password), saved.get("site")
