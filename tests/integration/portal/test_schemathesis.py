"""schemathesis against the live OpenAPI schema: generated requests to every operation
(as an admin with a write-enabled token, over a real influxd with data) never get a 5xx
and never get an answer the schema does not describe."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.harness.portal import PortalServer
from tests.harness.tools import tool
from tests.integration.portal.conftest import portal_available, start_influx

pytestmark = pytest.mark.influxd


@pytest.fixture(scope="module")
def portal() -> Iterator[tuple[PortalServer, str]]:
    reason = portal_available()
    if reason:
        pytest.skip(reason)
    influx = start_influx()
    # Throttling would answer 429 to the generator's flood: not what is tested here.
    server = PortalServer(influx.url, traffic_rate="100000/min")
    try:
        server.start()
        server.user("admin", "admin")
        token = server.token("admin", write=True)
        api = server.api(token)
        site = api.post(f"{server.url}/api/sites/", json={"name": "lab"}).json()
        box = api.post(f"{server.url}/api/boxes/", json={"name": "b1", "site": site["id"]})
        api.post(f"{server.url}/api/interfaces/", json={"name": "eth0", "box": box.json()["id"]})
        now = time.time_ns()
        assert influx.write("sitevis", "\n".join([
            f"flow,site=lab,box=b1,iface=eth0,dir=ingress,proto=udp,src=198.18.0.2,"
            f"dst=198.18.0.1,service=udp/53 bytes=1000i,packets=10i {now}",
            f"iface,site=lab,box=b1,iface=eth0,dir=ingress packets=10i,bytes=1000i {now}",
            f"packet,site=lab,box=b1,iface=eth0,dir=ingress,proto=udp src=\"198.18.0.2\","
            f"dst=\"198.18.0.1\",sport=5000i,dport=53i,length=100i,ttl=64i,tcp_flags=0i,"
            f"sample_rate=1000i {now}",
            f"sitevis_collector,site=lab,box=b1 flows_exported=1i,interfaces_attached=1i {now}",
        ]), rp="raw") == 204
        yield server, token
    finally:
        server.cleanup()
        influx.cleanup()


def test_no_server_error_and_no_answer_outside_the_schema(portal: tuple[PortalServer, str],
                                                          tmp_path):
    server, token = portal
    proc = subprocess.run(
        [tool("schemathesis"), "run", f"{server.url}/api/schema/",
         "-H", f"Authorization: Token {token}",
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--phases", "examples,coverage,fuzzing", "-n", "12", "--seed", "15",
         "--workers", "2", "--no-color", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path)   # its cache goes there
    summary = proc.stdout[-3000:]
    assert proc.returncode == 0, summary
    found = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
    assert found and found[1] == found[2] and int(found[1]) > 1000, summary
    print(summary)  # the figures, for the report (pytest -s)
