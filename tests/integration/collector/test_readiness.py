"""Readiness checks on this machine's real kernel, BCC and a real influxd.

Reduced privileges are real too: a child process runs the checks under setpriv with a
shrunken capability bounding set (root's effective set follows it across execve).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sitevis_collector.commands import readiness
from sitevis_collector.commands.readiness import FAIL, OK, SKIP, CheckResult

from tests.harness.influx import InfluxServer, free_port

REPO = Path(__file__).resolve().parents[3]
RUN_CHECKS = """
import json, sys
from sitevis_collector.commands.readiness import run_all
url = sys.argv[1] if len(sys.argv) > 1 else None
print(json.dumps([[r.name, r.status, r.detail] for r in run_all(url, timeout=1)]))
"""


def checks_in_child(bounding: str | None, *args: str,
                    python: list[str] | None = None) -> tuple[dict[str, tuple[str, str]], str]:
    """run_all() in a child, optionally under `setpriv --bounding-set=<bounding>`."""
    cmd = [*(python or [sys.executable]), "-c", RUN_CHECKS, *args]
    if bounding is not None:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv missing (Debian package util-linux)"
        cmd = [setpriv, f"--bounding-set={bounding}", "--inh-caps=-all", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO / "collector" / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    results = {name: (status, detail) for name, status, detail in json.loads(lines[-1])}
    return results, proc.stderr


def one_line(detail: str) -> None:
    assert detail and "\n" not in detail and "Traceback" not in detail


@pytest.fixture
def root_with_bcc(bcc_ready) -> None:
    """As root with BCC: the conditions under which every check must pass."""


def test_all_checks_pass_here_as_root(root_with_bcc, influxdb: InfluxServer) -> None:
    results = readiness.run_all(influxdb.url)
    assert [r.name for r in results] == [
        "privileges", "bpf syscall", "kernel headers", "BCC", "BPF program load",
        "TC clsact/cls_bpf", "InfluxDB"]
    assert [r.status for r in results] == [OK] * 7, [r.line() for r in results]
    assert "temporary network namespace" in results[5].detail
    # The throw-away namespace is gone again.
    assert not Path(f"/run/netns/sitevis-check-{os.getpid()}").exists()


def test_influxdb_check_on_a_closed_port_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = readiness.check_influxdb(url, timeout=1)
    assert result.status == FAIL
    one_line(result.detail)
    assert result.detail == (f"{url}/ping unreachable (Connection refused): start InfluxDB "
                             "or fix influxdb.url in the config")


@pytest.mark.parametrize("url", ["127.0.0.1:8086", "http://[::1", "ftp://127.0.0.1:1"])
def test_influxdb_check_on_a_malformed_url_is_one_clear_line(url: str) -> None:
    result = readiness.check_influxdb(url, timeout=1)
    assert result.status == FAIL and "fix influxdb.url" in result.detail
    one_line(result.detail)
    if not url.startswith("http://["):
        assert "is not an http(s)://host[:port] URL" in result.detail


def test_influxdb_check_gives_up_after_its_timeout() -> None:
    # Accepts connections (kernel backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        result = readiness.check_influxdb(url, timeout=0.5)
        elapsed = time.monotonic() - began
    assert result.status == FAIL and "no answer within 0.5s" in result.detail
    one_line(result.detail)
    assert elapsed < 2.0


@pytest.fixture
def not_influxdb() -> Iterator[str]:
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_influxdb_check_rejects_a_server_that_is_not_influxdb(not_influxdb: str) -> None:
    result = readiness.check_influxdb(not_influxdb)
    assert result.status == FAIL
    assert "answered HTTP 404, not 204" in result.detail


def test_missing_kernel_headers_name_the_paths_and_the_fix() -> None:
    result = readiness.check_kernel_headers("0.0.0-nonexistent")
    assert result.status == FAIL
    one_line(result.detail)
    assert "/lib/modules/0.0.0-nonexistent/build" in result.detail
    assert "/lib/modules/0.0.0-nonexistent/source" in result.detail
    assert "kernel_headers role" in result.detail


def test_unreadable_kernel_headers_are_told_apart_from_missing_ones(tmp_path: Path) -> None:
    # What systemd's ProtectKernelModules=yes does to BCC: the headers exist, unreadable.
    if os.geteuid() != 0:
        pytest.skip("needs root to drop CAP_DAC_OVERRIDE with setpriv")
    (tmp_path / "9.9.9/build/include/linux").mkdir(parents=True)
    (tmp_path / "9.9.9/build/include/linux/kconfig.h").write_text("")
    (tmp_path / "9.9.9").chmod(0o000)
    code = ("from pathlib import Path; from sitevis_collector.commands.readiness import "
            f"check_kernel_headers as c; print(c('9.9.9', Path({str(tmp_path)!r})).line())")
    try:
        denied = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                                 sys.executable, "-c", code],
                                capture_output=True, text=True, timeout=60)
        readable = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    finally:
        (tmp_path / "9.9.9").chmod(0o755)
    assert denied.stdout.strip() == (
        f"FAIL  kernel headers: kernel headers under {tmp_path}/9.9.9/build and "
        f"{tmp_path}/9.9.9/source are not readable (permission denied): allow "
        "/usr/lib/modules, e.g. ProtectKernelModules=no in the service"), denied.stderr
    assert readable.stdout.startswith("OK    kernel headers:"), readable.stderr


def test_cap_sys_admin_stands_in_for_bpf_and_perfmon(root_with_bcc) -> None:
    results, _ = checks_in_child("-all,+sys_admin,+net_admin")
    assert results["privileges"][0] == OK
    assert results["BPF program load"][0] == OK


def test_a_refused_scratch_namespace_skips_the_tc_check(root_with_bcc) -> None:
    # @system-service has no mount(): creating the namespace fails as under systemd's
    # RestrictNamespaces=; the check says it could not verify, it does not fail.
    sandbox = [sys.executable, str(Path(__file__).with_name("unit_sandbox.py")),
               "@system-service bpf", "--", sys.executable]
    results, stderr = checks_in_child("-all,+sys_admin,+net_admin", python=sandbox)
    status, detail = results["TC clsact/cls_bpf"]
    assert status == SKIP and "no throw-away network namespace" in detail, detail
    one_line(detail)
    assert results["BPF program load"][0] == OK
    assert "Traceback" not in stderr
    assert not list(Path("/run/netns").glob("sitevis-check-*"))


def test_without_bcc_the_check_says_which_package() -> None:
    # -S: no site-packages, so Debian's python3-bpfcc is out of reach.
    results, stderr = checks_in_child(None, python=["/usr/bin/python3", "-S"])
    status, detail = results["BCC"]
    assert status == FAIL and "python3-bpfcc" in detail
    one_line(detail)
    assert results["BPF program load"][0] == SKIP
    assert "Traceback" not in stderr


def test_without_capabilities_privileges_and_load_fail_clearly(root_with_bcc) -> None:
    results, stderr = checks_in_child("-all")
    for name in ("privileges", "BPF program load"):
        status, detail = results[name]
        assert status == FAIL, (name, detail)
        one_line(detail)
        assert "grant CAP_BPF CAP_PERFMON CAP_NET_ADMIN" in detail
    assert "lacks CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN" in results["privileges"][1]
    assert "not permitted" in results["BPF program load"][1]
    assert "Traceback" not in stderr


def test_without_perfmon_the_verifier_refusal_is_explained(root_with_bcc) -> None:
    results, stderr = checks_in_child("-all,+bpf,+net_admin")
    assert results["privileges"] == (FAIL, "root lacks CAP_PERFMON: run as root, or grant "
                                     "CAP_BPF CAP_PERFMON CAP_NET_ADMIN (the systemd unit does)")
    status, detail = results["BPF program load"]
    assert status == FAIL and "verifier refused it" in detail and "CAP_PERFMON" in detail
    one_line(detail)
    assert "Traceback" not in stderr


def test_with_only_the_needed_capabilities_tc_is_skipped_not_failed(root_with_bcc) -> None:
    # The unit's set: no CAP_SYS_ADMIN, so no throw-away namespace, but loading works.
    results, _ = checks_in_child("-all,+bpf,+perfmon,+net_admin")
    assert results["privileges"][0] == OK
    assert results["BPF program load"][0] == OK
    status, detail = results["TC clsact/cls_bpf"]
    assert status == SKIP and "CAP_SYS_ADMIN" in detail


def test_tc_check_on_a_named_interface_leaves_nothing_behind(root_with_bcc, host_pair) -> None:
    host = host_pair.left
    code = ("from sitevis_collector.commands.readiness import check_tc_attach; "
            f"r = check_tc_attach({host.ifname!r}); print(r.status, r.detail)")
    out = host.exec(sys.executable, "-c", code).stdout
    assert out.startswith("ok ") and host.ifname in out
    assert "clsact" not in host.exec("tc", "qdisc", "show", "dev", host.ifname).stdout
    missing = host.exec(sys.executable, "-c", code.replace(host.ifname, "nosuch0")).stdout
    assert missing.startswith("fail ") and "nosuch0" in missing


def test_a_result_prints_as_one_line() -> None:
    result = CheckResult("InfluxDB", FAIL, "http://x/ping unreachable")
    assert result.line() == "FAIL  InfluxDB: http://x/ping unreachable"
    assert not result.ok and CheckResult("x", SKIP, "y").ok
