"""Test hosts: network namespaces joined by veth, addressed in 198.18.0.0/15."""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass

# Each pair gets its own /30 out of 198.18.0.0/15 (benchmarking range, RFC 2544).
_pair_counter = itertools.count(1)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Host:
    netns: str
    ifname: str
    ip: str

    def exec(self, *cmd: str, check: bool = True,
             timeout: float | None = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host's namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *cmd],
            check=check, capture_output=True, text=True, timeout=timeout,
        )

    def popen(self, *cmd: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *cmd], **kwargs)


@dataclass(frozen=True)
class HostPair:
    left: Host
    right: Host


def _subnet(index: int) -> tuple[str, str]:
    base = (198 << 24) | (18 << 16) | (index * 4)
    def dotted(addr: int) -> str:
        return ".".join(str((addr >> shift) & 0xFF) for shift in (24, 16, 8, 0))
    return dotted(base + 1), dotted(base + 2)


def create_pair() -> HostPair:
    """Two namespaces joined by a veth pair; addresses .1 and .2 of a fresh /30."""
    index = (next(_pair_counter) + os.getpid() * 64) % (1 << 15)
    tag = f"{os.getpid() % 100000}x{index}"
    left = Host(f"svL{tag}", "veth0", "")
    right = Host(f"svR{tag}", "veth0", "")
    left_ip, right_ip = _subnet(index)
    for ns in (left.netns, right.netns):
        run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", f"svl{tag}", "netns", left.netns, "type", "veth",
            "peer", "name", f"svr{tag}", "netns", right.netns)
        for host, peer_name, ip in ((left, f"svl{tag}", left_ip),
                                    (right, f"svr{tag}", right_ip)):
            host.exec("ip", "link", "set", peer_name, "name", host.ifname)
            host.exec("ip", "addr", "add", f"{ip}/30", "dev", host.ifname)
            host.exec("ip", "link", "set", host.ifname, "up")
            host.exec("ip", "link", "set", "lo", "up")
    except BaseException:
        destroy_pair(HostPair(left, right))
        raise
    return HostPair(
        Host(left.netns, left.ifname, left_ip), Host(right.netns, right.ifname, right_ip)
    )


def destroy_pair(pair: HostPair) -> None:
    for host in (pair.left, pair.right):
        run("ip", "netns", "del", host.netns, check=False)


@dataclass(frozen=True)
class HostLink:
    """A veth between this (root) namespace and one test host: what a box's uplink is."""

    ifname: str      # our end, in the root namespace
    ip: str
    peer: Host


def _process_tag() -> str:
    """What every link name of this process carries: another pytest worker's differ."""
    return f"{os.getpid() % 100000}x"


def own_links_pattern() -> str:
    """A glob for the links this process creates, none of another pytest worker's."""
    return f"svh{_process_tag()}*"


def create_link() -> HostLink:
    """A veth from the root namespace to a fresh namespace, in a fresh /30."""
    index = (next(_pair_counter) + os.getpid() * 64) % (1 << 15)
    tag = f"{_process_tag()}{index}"
    local_ip, peer_ip = _subnet(index)
    ifname = f"svh{tag}"
    peer = Host(f"svP{tag}", "veth0", peer_ip)
    run("ip", "netns", "add", peer.netns)
    try:
        run("ip", "link", "add", ifname, "type", "veth", "peer", "name", f"svp{tag}",
            "netns", peer.netns)
        run("ip", "addr", "add", f"{local_ip}/30", "dev", ifname)
        run("ip", "link", "set", ifname, "up")
        peer.exec("ip", "link", "set", f"svp{tag}", "name", peer.ifname)
        peer.exec("ip", "addr", "add", f"{peer_ip}/30", "dev", peer.ifname)
        peer.exec("ip", "link", "set", peer.ifname, "up")
        peer.exec("ip", "link", "set", "lo", "up")
    except BaseException:
        destroy_link(HostLink(ifname, local_ip, peer))
        raise
    return HostLink(ifname, local_ip, peer)


def destroy_link(link: HostLink) -> None:
    # Deleting the namespace deletes its veth end, and with it ours.
    run("ip", "netns", "del", link.peer.netns, check=False)
    run("ip", "link", "del", link.ifname, check=False)
