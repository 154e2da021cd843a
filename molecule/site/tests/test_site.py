"""Two boxes and a monitor: a TCP transfer seen from both ends, and `sitevis verify`
naming a box whose collector stopped."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
from diagnostics import influx_rows

DISTRO = os.environ.get("MOLECULE_DISTRO", "12")
MONITOR = f"sitevis-site-monitor-d{DISTRO}"
BOX1 = f"sitevis-site-box1-d{DISTRO}"
BOX2 = f"sitevis-site-box2-d{DISTRO}"
PORT = 7000
SIZE = 4_000_000
REPO = Path(__file__).resolve().parents[3]
SITEVIS = REPO / ".venv" / "bin" / "sitevis"


def node(name: str):
    return testinfra.get_host(f"docker://{name}")


def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


@pytest.fixture(scope="module")
def transfer() -> dict:
    """SIZE bytes over TCP from box1 to box2; returns what the receiver counted."""
    box1, box2 = node(BOX1), node(BOX2)
    receiver = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {PORT})); s.listen(1); c, _ = s.accept(); n = 0\n"
        "while True:\n"
        "    b = c.recv(1 << 16)\n"
        "    if not b: break\n"
        "    n += len(b)\n"
        "open('/tmp/received', 'w').write(str(n))\n")
    box2.run("rm -f /tmp/received")
    box2.check_output(f"nohup python3 -c {shlex.quote(receiver)} >/tmp/receiver.log 2>&1 &")
    deadline = time.monotonic() + 20
    while f":{PORT} " not in box2.check_output("ss -ltnH"):
        assert time.monotonic() < deadline, box2.run("cat /tmp/receiver.log").stdout
        time.sleep(0.2)
    retrans_before = retransmitted(box1)
    box1.check_output(
        "python3 -c \"import socket\n"
        f"s = socket.create_connection(('{address(box2)}', {PORT}))\n"
        f"s.sendall(b'x' * {SIZE}); s.close()\"")
    deadline = time.monotonic() + 10
    while not box2.file("/tmp/received").exists:
        assert time.monotonic() < deadline, "the receiver never finished"
        time.sleep(0.2)
    time.sleep(6)  # two collector intervals and the delivery
    return {"received": int(box2.file("/tmp/received").content_string),
            "src": address(box1), "dst": address(box2),
            "retransmitted": retransmitted(box1) - retrans_before}


def retransmitted(host) -> int:
    """TCP segments the host retransmitted so far (RetransSegs of /proc/net/snmp)."""
    lines = [line.split() for line in host.file("/proc/net/snmp").content_string.splitlines()
             if line.startswith("Tcp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RetransSegs"])


def flow_bytes(box: str, direction: str, src: str, dst: str) -> tuple[int, int]:
    rows = influx_rows(node(MONITOR), url="http://127.0.0.1:8086", q=(
        "SELECT SUM(bytes) AS b, SUM(packets) AS p FROM flow WHERE "
        f"box = '{box}' AND dir = '{direction}' AND src = '{src}' AND dst = '{dst}' "
        f"AND service = 'tcp/{PORT}'"))
    assert rows, f"no flow {src} -> {dst} from {box} ({direction})"
    return rows[0]["b"], rows[0]["p"]


def test_transfer_is_seen_leaving_box1_and_entering_box2(transfer):
    assert transfer["received"] == SIZE
    sent_b, sent_p = flow_bytes(BOX1, "egress", transfer["src"], transfer["dst"])
    recv_b, recv_p = flow_bytes(BOX2, "ingress", transfer["src"], transfer["dst"])
    # Payload plus Ethernet/IP/TCP headers: at least the payload, at most 66 bytes of
    # headers per wire segment (TSO super-packets carry their headers once), plus what
    # TCP sent again (a loaded CI machine makes it retransmit).
    resent = transfer["retransmitted"] * 1514
    for total, packets in ((sent_b, sent_p), (recv_b, recv_p)):
        assert SIZE < total <= SIZE + 66 * packets + resent
    # The same frames cross the network: both ends count them alike, except frames lost
    # on the way (then TCP retransmitted them, so the loss is bounded by that).
    assert 0 <= sent_b - recv_b <= resent
    assert 0 <= sent_p - recv_p <= transfer["retransmitted"]


def sitevis_verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SITEVIS), "verify", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args],
        capture_output=True, text=True, timeout=300, cwd=REPO)


def test_sitevis_verify_passes():
    proc = sitevis_verify()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_sitevis_verify_names_a_silent_box():
    box2 = node(BOX2)
    box2.check_output("systemctl stop sitevis-collector")
    try:
        time.sleep(6)
        proc = sitevis_verify("--within", "5", "--timeout", "3")
        assert proc.returncode == 2
        assert f"silent boxes: {BOX2}" in proc.stdout
        assert BOX1 not in proc.stdout.split("silent boxes:")[1].split("(")[0]
    finally:
        box2.check_output("systemctl start sitevis-collector")
