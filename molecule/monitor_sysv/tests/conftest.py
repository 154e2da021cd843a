"""Diagnostics on failure come from molecule/shared."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from conftest_shared import pytest_runtest_makereport  # noqa: F401
