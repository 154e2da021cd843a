"""The portal on the all-in-one box after `site.yml`: the service runs sandboxed on
loopback; the admin (password from the site's secrets) makes a token; the box list is
the scenario's box; a traffic query returns the bytes sent inside the box."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from portal_api import call
from test_all_in_one import FRAME, PORT, SENT, traffic  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def token(host) -> str:
    """Log in as the rollout's admin and make a read-only token."""
    secrets = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
    password = (secrets / "portal_admin_password").read_text().strip()
    made = call(host, "/api/users/tokens/provision/", method="POST", body={
        "username": "admin", "password": password, "description": "molecule"})
    assert made["status"] == 201, made
    return made["body"]["token"]


def test_the_portal_runs_sandboxed_on_loopback(host):
    unit = host.service("sitevis-portal")
    assert unit.is_running and unit.is_enabled
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening
    show = host.check_output("systemctl show sitevis-portal -p User -p NoNewPrivileges "
                             "-p ProtectSystem -p CapabilityBoundingSet")
    assert "User=sitevis-portal" in show and "NoNewPrivileges=yes" in show
    assert "ProtectSystem=strict" in show and "CapabilityBoundingSet=\n" in show + "\n"
    assert host.file("/etc/sitevis-portal/portal-secret-key").mode == 0o640


@pytest.mark.parametrize("service", ["sitevis-portal-worker", "sitevis-portal-health"])
def test_the_rollout_worker_and_the_health_evaluator_run(host, service):
    """Both run (after the converge and the idempotence run) and start at boot."""
    unit = host.service(service)
    assert unit.is_running and unit.is_enabled
    assert "User=sitevis-portal" in host.check_output(f"systemctl show {service} -p User")


def test_the_root_runner_is_off_unless_asked(host):
    """Its unit is there (turning it off later stops it) but not enabled nor running:
    this scenario sets no portal_rollout_root_runner; no spool either."""
    unit = host.service("sitevis-portal-runner")
    assert host.file("/etc/systemd/system/sitevis-portal-runner.service").exists
    assert not unit.is_running and not unit.is_enabled
    assert not host.file("/var/lib/sitevis-portal-runner").exists


def test_the_box_list_shows_the_scenarios_box(host, token):
    boxes = call(host, "/api/boxes/", token)
    assert boxes["status"] == 200
    hostname = host.check_output("hostname")
    assert [(b["name"], b["site_name"]) for b in boxes["body"]["results"]] == [
        (hostname, "molecule")]
    assert call(host, "/api/boxes/")["status"] in (401, 403)


def test_a_traffic_query_returns_the_bytes_sent(host, token, traffic):  # noqa: F811
    path = "/api/flows/top/?by=services&interface=tv0&dir=ingress&since=1h"
    deadline = traffic + 2 + 10
    row: dict = {}
    while time.monotonic() < deadline:
        rows = call(host, path, token)["body"]["rows"]
        row = next((r for r in rows if r["key"]["service"] == f"udp/{PORT}"), {})
        if row.get("packets", 0) >= SENT:
            break
        time.sleep(0.5)
    # The fixture sent SENT packets (test_all_in_one's run of it may have sent as many).
    assert row["packets"] in (SENT, 2 * SENT)
    assert row["bytes"] == row["packets"] * FRAME
