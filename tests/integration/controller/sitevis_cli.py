"""Run the installed `sitevis` command as a user would, with a wide fixed-width table."""

from __future__ import annotations

import subprocess

from tests.harness.tools import tool


def sitevis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("sitevis"), *args],
                          capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
