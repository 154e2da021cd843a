"""`sitevis portal COMMAND`: Django's management commands with the portal's settings.

serve (gunicorn), migrate (also collects static files), createuser, import (an Ansible
inventory), refresh (boxes' health from InfluxDB), and every Django command (check,
changepassword, ...). A bad config is one line and exit 1.
"""

from __future__ import annotations

import os
import sys

USAGE = ("usage: sitevis portal {serve,migrate,createuser,import,refresh,health,worker,runner,...}"
         " [options]\n"
         "  config: $SITEVIS_PORTAL_CONFIG (default /etc/sitevis-portal/portal.yml)\n")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        print("sitevis portal: Django is not installed (pip install 'sitevis[portal]')",
              file=sys.stderr)
        return 1
    from sitevis.portal.config import ConfigError, load

    try:
        load()
    except ConfigError as err:
        print(f"sitevis portal: {err}", file=sys.stderr)
        return 1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sitevis.portal.settings")
    try:
        execute_from_command_line(["sitevis portal", *argv])
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0
