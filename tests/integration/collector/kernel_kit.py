"""Helpers for the kernel-side tests: observed veth ends, raw frame sending, counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sitevis_collector.hooks import hooks_for
from sitevis_collector.kernel.drain import Drainer
from sitevis_collector.kernel.program import FlowProgram, KernelSettings
from sitevis_collector.records import INGRESS, DrainResult

from tests.harness.netns import Host, HostPair
from tests.integration.collector import frames as f

_RAW_SENDER = """
import json, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame, count in json.load(sys.stdin):
    data = bytes.fromhex(frame)
    for _ in range(count):
        s.send(data)
"""

TRAFGEN_CONF = """{{
  eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01),
  ipv4(saddr={src}, daddr={dst}, ttl=64),
  udp(sp=dinc({sport}, {sport_last}), dp={dport}),
  fill(0x41, 22)
}}
"""
TRAFGEN_FRAME_BYTES = 14 + 20 + 8 + 22


def ifindex(host: Host) -> int:
    return int(host.exec("cat", f"/sys/class/net/{host.ifname}/ifindex").stdout)


def iface_stat(host: Host, name: str) -> int:
    return int(host.exec("cat", f"/sys/class/net/{host.ifname}/statistics/{name}").stdout)


def quiet(pair: HostPair) -> None:
    """No traffic of the kernel's own: IPv6 off (no ND/MLD), static neighbours (no ARP)."""
    macs = {}
    for host in (pair.left, pair.right):
        host.exec("sysctl", "-qw", f"net.ipv6.conf.{host.ifname}.disable_ipv6=1")
        macs[host.netns] = host.exec("cat", f"/sys/class/net/{host.ifname}/address").stdout.strip()
    for host, peer in ((pair.left, pair.right), (pair.right, pair.left)):
        host.exec("ip", "neigh", "replace", peer.ip, "lladdr", macs[peer.netns],
                  "dev", host.ifname, "nud", "permanent")


def send_frames(host: Host, frames: list[tuple[bytes, int]]) -> None:
    """Send each frame `count` times from a raw AF_PACKET socket inside host's netns."""
    send_raw(host.ifname, frames, host.netns)


def send_raw(ifname: str, frames: list[tuple[bytes, int]], netns: str | None = None) -> None:
    """Send each frame `count` times out of an interface (of netns; None: this one)."""
    payload = json.dumps([[f.hex(), n] for f, n in frames])
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, sys.executable, "-c", _RAW_SENDER, ifname], input=payload,
                   text=True, check=True, timeout=120)


def trafgen(host: Host, tmp: Path, count: int, *, src: str, dst: str, sport: int,
            flows: int, dport: int) -> None:
    """trafgen (AF_PACKET TX_RING, through the qdisc layer with -q) from host."""
    conf = tmp / "trafgen.cfg"
    conf.write_text(TRAFGEN_CONF.format(src=src, dst=dst, sport=sport,
                                        sport_last=sport + flows - 1, dport=dport))
    host.exec("trafgen", "-q", "--dev", host.ifname, "--conf", str(conf), "-n", str(count),
              "--cpus", str(min(2, os.cpu_count() or 1)), "--no-sock-mem", timeout=120)


@dataclass
class Side:
    """One veth end with our program attached."""

    host: Host
    program: FlowProgram
    hooks: object
    drainer: Drainer
    ifindex: int

    def drain(self) -> DrainResult:
        return self.drainer.drain({self.ifindex: self.host.ifname})

    def ingress_packets(self) -> int:
        """Packets counted on ingress since the last drain."""
        return self.drain().totals[(self.host.ifname, INGRESS)].packets


@contextmanager
def observed(host: Host, settings: KernelSettings | None = None,
             program: FlowProgram | None = None, tc_attach: str = "auto") -> Iterator[Side]:
    """Attach (a fresh or the given) program to host's veth (tcx where the kernel has
    it, as the collector does, or as tc_attach says); detach and close after."""
    own = program is None
    program = program or FlowProgram(settings or KernelSettings())
    hooks = hooks_for(program, host.netns, tc_attach)
    idx = ifindex(host)
    try:
        hooks.attach(idx, program.directions)
        side = Side(host, program, hooks, Drainer(program), idx)
        yield side
    finally:
        hooks.detach_all()
        hooks.close()
        if own:
            program.close()


# One UDP frame the hook tests send: its count is what every program must see.
UDP_FRAME = f.eth(0x0800, f.ipv4("198.18.250.1", "198.18.250.2", 17, f.udp(1000, 2000)))


def send_udp(sender: Host, count: int) -> None:
    """count copies of UDP_FRAME from sender, then wait until the veth carried them."""
    send_frames(sender, [(UDP_FRAME, count)])
    settle()


def settle(seconds: float = 0.15) -> None:
    """Let veth backlog processing finish (frames cross in softirq context)."""
    time.sleep(seconds)


def tc_filters(host: Host, direction: str) -> str:
    return host.exec("tc", "filter", "show", "dev", host.ifname, direction).stdout


REPO = Path(__file__).resolve().parents[3]


@contextmanager
def attached_child(host: Host, idx: int, hook: str, tc_attach: str = "auto",
                   registered: bool = False) -> Iterator[subprocess.Popen]:
    """Another process (a collector stand-in, kernel_child.py) with our program attached
    to the interface until the block ends; then it dies by SIGKILL. registered: it
    registers as a running collector does, else it is like an unregistered (older)
    one."""
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("kernel_child.py")), host.netns,
         str(idx), hook, tc_attach, *(["registered"] if registered else [])],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "attached"
        yield child
    finally:
        child.kill()
        child.wait()


def attach_then_sigkill(host: Host, idx: int, hook: str, tc_attach: str) -> None:
    """What a crashed collector leaves behind: clsact filters and XDP programs stay in
    the kernel; tcx links go with the process."""
    with attached_child(host, idx, hook, tc_attach):
        pass
