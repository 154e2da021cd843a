"""A sitevis-collector process under test: its config, start/stop, traffic to it, and
what it attached. Shared by the collector, status and dashboard tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml
from sitevis_collector.hooks.tcx import chain, tcx_available
from sitevis_collector.kernel import bpfsys
from sitevis_collector.records import EGRESS, INGRESS

from tests.harness.influx import InfluxServer
from tests.harness.netns import Host, HostLink
from tests.harness.tools import tool

PORT = 9999  # below the service bound (32768): the service is udp/9999
PAYLOAD = 100
# Ethernet 14 + IPv4 20 + UDP 8 + payload: the frame as on the wire without FCS.
FRAME_BYTES = 14 + 20 + 8 + PAYLOAD
SENDER = """
import socket, sys
dst, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"x" * size, (dst, port))
"""


def send_udp(src: Host, dst_ip: str, count: int) -> None:
    src.exec("python3", "-c", SENDER, dst_ip, str(PORT), str(count), str(PAYLOAD))


def write_config(tmp_path: Path, link: HostLink, influx_url: str, **extra) -> Path:
    cfg = {
        "site": "lab",
        "box": "box 1",
        "interfaces": {"include": [link.ifname]},
        "interval": 1,
        "influxdb": {"url": influx_url, "database": "sitevis",
                     "retry_initial": 0.2, "retry_max": 1},
        "spool": {"dir": str(tmp_path / "spool"), "max_bytes": 10_000_000},
        "sample_rate": 0,
        **extra,
    }
    path = tmp_path / "collector.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def our_filters(ifname: str) -> list[str]:
    """One line per sitevis program on the interface's hooks: tc's own lines for clsact
    filters, "tcx <dir> <name> prog <id> link <id>" for tcx links. Lines name program
    ids, so a filter replaced by a new run reads differently."""
    lines: list[str] = []
    for hook in ("ingress", "egress"):
        out = subprocess.run(["tc", "filter", "show", "dev", ifname, hook],
                             capture_output=True, text=True).stdout
        lines += [line for line in out.splitlines() if "sitevis" in line]
    if tcx_available():
        idx = socket.if_nametoindex(ifname)
        for direction in (INGRESS, EGRESS):
            for prog, link in chain(idx, direction):
                name = bpfsys.prog_name(prog) or ""
                if name.startswith("sitevis"):
                    lines.append(f"tcx {direction} {name} prog {prog} link {link}")
    return lines


def wait_detached(ifname: str, timeout: float = 5) -> None:
    """Until no program of ours is on the interface (the kernel releases the tcx links
    of a killed process as its fds close)."""
    deadline = time.monotonic() + timeout
    while our_filters(ifname) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert our_filters(ifname) == []


def wait_attached(ifname: str, proc: subprocess.Popen, timeout: float = 60,
                  replacing: list[str] | None = None) -> None:
    """Until both hooks carry a sitevis filter (other than the `replacing` ones)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = our_filters(ifname)
        if len(current) >= 2 and not set(current) & set(replacing or []):
            return
        if proc.poll() is not None:
            raise AssertionError(f"collector exited early: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"collector did not attach to {ifname} in {timeout}s")


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen([tool("sitevis-collector"), "run", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def collect_boxes(links: dict[str, HostLink], sent: dict[str, int], influx_url: str,
                  tmp_dir, site: str = "lab") -> None:
    """A collector per box (named as the key, in `site`) on its link; `sent[box]` UDP
    packets through each; then every collector stopped cleanly, its data written.
    `tmp_dir(name)` gives a fresh directory (tmp_path_factory.mktemp)."""
    procs = {}
    for name, link in links.items():
        config = write_config(tmp_dir(name), link, influx_url)
        data = yaml.safe_load(config.read_text())
        data.update(box=name, site=site)
        config.write_text(yaml.safe_dump(data))
        procs[name] = start(config)
    for name, proc in procs.items():
        wait_attached(links[name].ifname, proc)
        send_udp(links[name].peer, links[name].ip, sent[name])
    time.sleep(1.5)
    for proc in procs.values():
        rc, err = stop(proc)
        assert rc == 0, err


def flow_packets(influx: InfluxServer, link: HostLink) -> list[dict]:
    return influx.rows(
        "SELECT SUM(packets) AS packets, SUM(bytes) AS bytes FROM flow "
        f"WHERE service = 'udp/{PORT}' AND dir = 'ingress' AND iface = '{link.ifname}' "
        f"AND src = '{link.peer.ip}' AND dst = '{link.ip}'", db="sitevis")



def counts_once_and_leaves_nothing(proc: subprocess.Popen, influx: InfluxServer,
                                   link: HostLink, count: int = 100) -> None:
    """Send `count` packets to the running collector, SIGTERM it: it exits 0, every
    packet is stored once, and no program of ours is left on the interface."""
    send_udp(link.peer, link.ip, count)
    rc, err = stop(proc)
    assert rc == 0, err
    assert [r["packets"] for r in flow_packets(influx, link)] == [count]
    assert our_filters(link.ifname) == []

STEADY_SENDER = """
import socket, sys, time
dst, port, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, start = 0, time.monotonic()
print("sending", flush=True)
try:
    while True:  # paced: `rate` packets a second, until SIGINT
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            s.sendto(b"x" * PAYLOAD_SIZE, (dst, port))
            sent += 1
        time.sleep(0.01)
except KeyboardInterrupt:
    print(sent, flush=True)
""".replace("PAYLOAD_SIZE", str(PAYLOAD))


class SteadyUdp:
    """UDP from the link's peer to it at a steady rate, in the background, until
    stopped; stop() returns how many packets were sent. As a context manager it is
    killed at the end if still running."""

    def __init__(self, src: Host, dst_ip: str, rate: float = 200.0) -> None:
        self.rate = rate
        self._proc = src.popen("python3", "-c", STEADY_SENDER, dst_ip, str(PORT), str(rate),
                               stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        assert self._proc.stdout.readline().strip() == "sending"

    def stop(self) -> int:
        self._proc.send_signal(signal.SIGINT)
        out, _ = self._proc.communicate(timeout=30)
        return int(out.strip())

    def __enter__(self) -> SteadyUdp:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.communicate()
