"""The Issues pages on a live portal: filters are the URL and change the rows, a viewer
gets no controls and a 403 on POST, an operator's acknowledgement with a note is in the
page, its history and the change log, a user of one site sees nothing of another.

Their own portal (also the browser test's): the health modules' portal skips the static
files pages need, and issues made here would be findings its evaluations do not expect."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.harness.portal import PortalServer
from tests.integration.portal.conftest import Site
from tests.integration.portal.test_health_issues import issues, started

pytestmark = pytest.mark.influxd
# The issues the pages show, opened through the lifecycle as the evaluator opens them;
# spool_growing was last seen three days ago (outside "last 24 hours").
ISSUES = """
from datetime import timedelta
from django.utils import timezone
from sitevis.portal.health.lifecycle import open_finding
now = timezone.now()
lab, far = Box.objects.get(name="lab-box"), Box.objects.get(name="far-box")
ids = {"lab_silent": open_finding(lab, "silent", "no self-metrics for 50 s", now),
       "lab_old": open_finding(lab, "spool_growing", "0 -> 50000", now - timedelta(days=3)),
       "far_coverage": open_finding(far, "coverage", "coverage 0.50", now),
       "far_overflow": open_finding(far, "overflow", "overflow_events 3", now)}
open_finding(lab, "silent", "no self-metrics for 60 s")   # counted again
print(json.dumps({name: issue.pk for name, issue in ids.items()}))
"""


@dataclass
class IssuesPortal:
    site: Site
    ids: dict[str, int]
    sessions: dict[str, requests.Session] = field(default_factory=dict)

    def login(self, user: str) -> requests.Session:
        """A signed-in session per user, kept: each login hashes a password (CPU time)."""
        if user not in self.sessions:
            self.sessions[user] = self.portal.login(user)
        return self.sessions[user]

    @property
    def portal(self) -> PortalServer:   # what tests/browser's helpers call `live.portal`
        return self.site.portal


_STARTED: list[IssuesPortal] = []   # the browser module imports the fixture: one portal


@pytest.fixture(scope="session")
def issues_portal() -> Iterator[IssuesPortal]:
    """A portal with pages over an empty influxd (the overview lists the inventory's boxes),
    the health modules' users and sites, and four issues."""
    if _STARTED:
        yield _STARTED[0]
        return
    try:
        with started(PortalServer, ISSUES) as (site, ids):
            _STARTED.append(IssuesPortal(site, json.loads(ids)))
            yield _STARTED[0]
    finally:
        _STARTED.clear()


def shown(page: requests.Response) -> list[int]:
    assert page.status_code == 200, page.status_code
    return [int(pk) for pk in re.findall(r'<tr data-issue="(\d+)"', page.text)]


def post(session: requests.Session, url: str, **data: str) -> requests.Response:
    """A form POST as the browser sends it: the CSRF cookie's token in the body."""
    return session.post(url, data={**data, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                        headers={"Referer": url}, allow_redirects=False, timeout=30)


def test_filters_change_the_rows_and_are_the_url(issues_portal: IssuesPortal):
    ids, url = issues_portal.ids, f"{issues_portal.portal.url}/issues/"
    viewer = issues_portal.login("viewer")
    everything = shown(viewer.get(url))     # unresolved by default, last seen first
    assert set(everything) >= set(ids.values())
    assert everything.index(ids["lab_old"]) > everything.index(ids["lab_silent"])
    assert set(shown(viewer.get(url, params={"site": "lab"}))) == {
        ids["lab_silent"], ids["lab_old"]}
    assert shown(viewer.get(url, params={"box": "far-box", "kind": "coverage"})) == [
        ids["far_coverage"]]
    assert ids["lab_old"] not in shown(viewer.get(url, params={"since": "24h"}))
    assert shown(viewer.get(url, params={"status": "resolved"})) == []
    page = viewer.get(url, params={"site": "lab", "status": "open", "since": "7d"})
    assert 'value="lab"' in page.text and '<option value="open" selected>' in page.text
    # An empty control is left out of the URL (a clean link to share).
    moved = viewer.get(url, params={"site": "", "kind": "silent"}, allow_redirects=False)
    assert (moved.status_code, moved.headers["Location"]) == (302, "/issues/?kind=silent")
    assert viewer.get(url, params={"kind": "nonsense"}).text.count('role="alert"') == 1


def test_viewer_sees_no_controls_and_a_viewer_post_is_refused(issues_portal: IssuesPortal):
    pk, portal = issues_portal.ids["far_overflow"], issues_portal.portal
    detail = f"{portal.url}/issues/{pk}/"
    viewer = issues_portal.login("viewer")
    page = viewer.get(detail)
    assert page.status_code == 200 and "data-form=" not in page.text
    assert "data-needs" not in viewer.get(f"{portal.url}/issues/").text
    for step in ("acknowledge", "resolve"):
        assert post(viewer, f"{detail}{step}/", note="mine").status_code == 403
    assert "data-form=\"acknowledge\"" in issues_portal.login("operator").get(detail).text
    assert issues(issues_portal.site, "viewer", id=str(pk))[0]["status"] == "open"


def test_operator_acknowledges_with_a_note_then_resolves(issues_portal: IssuesPortal):
    pk, portal = issues_portal.ids["lab_silent"], issues_portal.portal
    detail = f"{portal.url}/issues/{pk}/"
    operator = issues_portal.login("operator")
    done = post(operator, f"{detail}acknowledge/", note="cable pulled, on it")
    assert (done.status_code, done.headers["Location"]) == (302, f"/issues/{pk}/")
    page = operator.get(detail).text
    assert 'data-col="status" data-status="acknowledged"' in page
    assert re.search(r'data-step="acknowledged">.*?<td>operator</td><td>cable pulled, on it<',
                     page)
    assert 'data-step="counted' in page and 'data-step="opened"' in page
    row = operator.get(f"{portal.url}/issues/", params={"site": "lab"}).text
    assert "operator: cable pulled, on it" in row
    assert post(operator, f"{detail}acknowledge/").status_code == 409   # only open ones
    assert post(operator, f"{detail}resolve/").status_code == 302
    assert re.search(r'data-step="resolved">.*?<td>operator</td>', operator.get(detail).text)
    log = issues_portal.site.get("admin", "/api/changes/", object_type="health.issue",
                                 object_id=str(pk)).json()["results"]
    assert [(c["user_name"], c["after"]["status"], c["after"]["note"]) for c in log[:2]] == [
        ("operator", "resolved", "cable pulled, on it"),
        ("operator", "acknowledged", "cable pulled, on it")]


def test_a_user_of_one_site_sees_nothing_of_another(issues_portal: IssuesPortal):
    ids, portal = issues_portal.ids, issues_portal.portal
    labviewer = issues_portal.login("labviewer")
    rows = shown(labviewer.get(f"{portal.url}/issues/", params={"status": "any"}))
    assert ids["lab_old"] in rows and ids["far_coverage"] not in rows
    assert shown(labviewer.get(f"{portal.url}/issues/", params={"site": "far"})) == []
    page = labviewer.get(f"{portal.url}/issues/")
    assert "far-box" not in page.text and ">far<" not in page.text
    assert labviewer.get(f"{portal.url}/issues/{ids['far_coverage']}/").status_code == 404
    # The nav's count is of the user's sites only.
    lab_open = len(issues(issues_portal.site, "labviewer", status="open"))
    assert f'data-open-issues="{lab_open}"' in page.text or lab_open == 0


def test_the_overview_marks_the_boxes_with_unresolved_issues(issues_portal: IssuesPortal):
    portal = issues_portal.portal
    page = issues_portal.login("viewer").get(f"{portal.url}/").text
    rows = dict(re.findall(r'<tr data-box="([^"]+)"(.*?)</th>', page, re.S))
    assert set(rows) == {"lab-box", "far-box"}
    unresolved = issues(issues_portal.site, "viewer", unresolved="true")
    for box, row in rows.items():
        count = sum(1 for i in unresolved if i["box_name"] == box)
        assert f'data-issues="{count}"' in row and "site=" in row, (box, row)
