"""The Issues pages in Debian's chromium: an operator acknowledges an issue with a note
from its page and finds it acknowledged in the list, with no console error on the way."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_pages import by_css, console_errors, login, open_page, screenshot, wait
from tests.integration.portal import test_health_pages
from tests.integration.portal.test_health_pages import IssuesPortal

# The Issues pages' portal, shared with their integration tests (one portal a session).
issues_portal = test_health_pages.issues_portal
pytestmark = pytest.mark.influxd

NOTE = "coverage dip after the switch reboot, watching"


def test_operator_acknowledges_an_issue_with_a_note(issues_portal: IssuesPortal,
                                                     bare_browser: Any):
    driver, pk = bare_browser, issues_portal.ids["far_coverage"]
    login(driver, issues_portal, "operator")   # type: ignore[arg-type]
    open_page(driver, issues_portal, "/issues/?site=far")   # type: ignore[arg-type]
    assert by_css(driver, f"tr[data-issue='{pk}']")[0].get_attribute("data-status") == "open"
    by_css(driver, f"tr[data-issue='{pk}'] a[href='/issues/{pk}/']")[0].click()
    wait(driver, lambda: driver.current_url.endswith(f"/issues/{pk}/"), "issue page")
    unlabelled = driver.execute_script(
        "return [...document.querySelectorAll('main input:not([type=hidden])')]"
        ".filter(e => !e.labels.length).map(e => e.name)")
    assert unlabelled == []
    by_css(driver, "#ack-note")[0].send_keys(NOTE)
    by_css(driver, "form[data-form=acknowledge] button[type=submit]")[0].click()
    wait(driver, lambda: by_css(driver, "td[data-col=status][data-status=acknowledged]"),
         "acknowledged")
    assert console_errors(driver) == []
    history = by_css(driver, "[data-table=history] tr[data-step=acknowledged]")[0].text
    assert "operator" in history and NOTE in history
    open_page(driver, issues_portal, "/issues/")   # type: ignore[arg-type]
    row = by_css(driver, f"tr[data-issue='{pk}']")[0]
    assert row.get_attribute("data-status") == "acknowledged"
    assert f"operator: {NOTE}" in row.text
    screenshot(driver, "issues")
