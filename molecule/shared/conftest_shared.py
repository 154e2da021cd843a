"""pytest hooks every scenario's tests/conftest.py imports: on a failed test, attach the
diagnostics of each box to the report."""

from __future__ import annotations

import pytest
from diagnostics import explain


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    host = item.funcargs.get("host")
    if host is None:
        return
    try:
        report.sections.append((f"diagnostics of {host.backend.get_hostname()}",
                                explain(host)))
    except Exception as err:
        report.sections.append(("diagnostics", f"could not collect: {err}"))


__all__ = ["pytest_runtest_makereport"]
