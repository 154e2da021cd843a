"""Attach manager on real interfaces, in a network namespace each test creates.

The manager runs in a child process under `ip netns exec` (attach_child.py), so it only
ever sees the test's namespace. Timestamps are CLOCK_MONOTONIC, shared by both processes.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sitevis_collector.hooks.interfaces import Counters, Patterns

REPO = Path(__file__).resolve().parents[3]
_ns_counter = itertools.count(1)
Event = dict[str, Any]
UDP_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    s.sendto(bytes(1000), (sys.argv[1], 40000))
"""


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces and interfaces")
    name = f"svat{os.getpid() % 100000}x{next(_ns_counter)}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        # No IPv6 autoconf/MLD chatter: counters stay still between two reads.
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def veth(ns: str, name: str, peer: str) -> None:
    sh("ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", peer)


class Child:
    """The manager process: send commands, wait for the JSON events it prints."""

    def __init__(self, ns: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m",
             "tests.integration.collector.attach_child", *args],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[Event] = []
        self._seen = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect(lambda e: e["ev"] == "ready", timeout=10)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, pred: Callable[[Event], bool], timeout: float = 5) -> Event:
        """The next event (after those already expected) matching pred."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self._seen, len(self.events)):
                    if pred(self.events[i]):
                        self._seen = i + 1
                        return self.events[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event within {timeout}s: {self.events}")
                self._cond.wait(left)

    def wait_for(self, pred: Callable[[Event], bool], timeout: float = 5) -> Event:
        """Any event so far or within timeout matching pred, in whatever order."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if pred(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event within {timeout}s: {self.events}")
                self._cond.wait(left)

    def ask(self, command: str, ev: str) -> Event:
        self.send(command)
        return self.expect(lambda e: e["ev"] == ev)

    def attached(self) -> set[str]:
        return set(self.ask("state", "state")["attached"].values())

    def callbacks(self) -> list[tuple[str, str]]:
        with self._cond:
            return [(e["ev"], e["ifname"]) for e in self.events if "ifname" in e]

    def close(self) -> str:
        """Stop the manager; return its stderr, which must hold no traceback."""
        if self.proc.poll() is None:
            self.send("stop")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@pytest.fixture
def start_child(netns: str) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(*args: str) -> Child:
        child = Child(netns, *args)
        children.append(child)
        return child

    yield start
    for child in children:
        stderr = child.close()
        assert "Traceback" not in stderr, stderr


def is_cb(ev: str, ifname: str) -> Callable[[Event], bool]:
    return lambda e: e["ev"] == ev and e.get("ifname") == ifname


def test_patterns_include_globs_and_exclude_wins() -> None:
    pats = Patterns(include=("eth*", "ens[0-9]", "lo"), exclude=("eth9*",))
    assert [n for n in ("eth0", "eth12", "eth9", "eth99", "ens3", "ens10", "lo", "wlan0")
            if pats.matches(n)] == ["eth0", "eth12", "ens3", "lo"]
    assert not Patterns(include=("*",), exclude=("*",)).matches("eth0")
    assert not Patterns(include=()).matches("eth0")


def test_start_attaches_exactly_the_matching_interfaces(netns: str, start_child) -> None:
    for name in ("sva0", "svb0"):
        veth(netns, name, name.replace("0", "1"))
    child = start_child("--include", "sva*", "svb*", "lo", "--exclude", "svb1")
    assert child.attached() == {"sva0", "sva1", "svb0", "lo"}
    assert sorted(child.callbacks()) == [("add", "lo"), ("add", "sva0"), ("add", "sva1"),
                                         ("add", "svb0")]


def test_new_interface_is_attached_within_one_second(netns: str, start_child) -> None:
    # A 60 s reconcile interval: only the link event can be this fast.
    child = start_child("--include", "svn*", "--interval", "60")
    began = time.monotonic()
    veth(netns, "svn0", "other0")
    added = child.expect(is_cb("add", "svn0"), timeout=3)
    latency = added["t"] - began
    assert latency < 1.0, f"attached after {latency:.3f}s"
    assert child.attached() == {"svn0"}


def test_deleted_interface_is_removed(netns: str, start_child) -> None:
    veth(netns, "svd0", "svd1")
    child = start_child("--include", "svd*")
    assert child.attached() == {"svd0", "svd1"}
    sh("ip", "-n", netns, "link", "del", "svd0")  # takes its peer with it
    child.wait_for(is_cb("remove", "svd0"), timeout=1)
    child.wait_for(is_cb("remove", "svd1"), timeout=1)
    assert child.attached() == set()


def test_rename_into_and_out_of_the_patterns(netns: str, start_child) -> None:
    veth(netns, "tmp0", "tmp1")
    child = start_child("--include", "svr*")
    assert child.attached() == set()
    sh("ip", "-n", netns, "link", "set", "tmp0", "name", "svr0")
    child.expect(is_cb("add", "svr0"), timeout=1)
    sh("ip", "-n", netns, "link", "set", "svr0", "name", "svr5")  # stays matching
    child.expect(is_cb("remove", "svr0"), timeout=1)
    child.expect(is_cb("add", "svr5"), timeout=1)
    sh("ip", "-n", netns, "link", "set", "svr5", "name", "gone0")
    child.expect(is_cb("remove", "svr5"), timeout=1)
    assert child.attached() == set()


def test_failed_add_is_retried_by_reconcile(netns: str, start_child) -> None:
    child = start_child("--include", "svf*", "--interval", "60")
    child.send("fail-add svf0")
    veth(netns, "svf0", "svf1")
    child.wait_for(is_cb("add-failed", "svf0"), timeout=2)
    child.wait_for(is_cb("add", "svf1"), timeout=2)  # one failure does not stop the others
    child.wait_for(lambda e: e["ev"] == "log" and "svf0" in e["msg"] and "retry" in e["msg"])
    state = child.ask("state", "state")
    assert set(state["attached"].values()) == {"svf1"} and state["alive"]
    child.ask("reconcile", "reconciled")
    assert child.attached() == {"svf0", "svf1"}


def test_periodic_reconcile_retries_without_being_asked(netns: str, start_child) -> None:
    child = start_child("--include", "svp*", "--interval", "0.3")
    child.send("fail-add svp0")
    veth(netns, "svp0", "other0")
    failed = child.expect(is_cb("add-failed", "svp0"), timeout=2)
    added = child.expect(is_cb("add", "svp0"), timeout=2)
    assert added["t"] - failed["t"] < 1.0


def test_vanished_interface_is_forgotten_even_if_on_remove_fails(netns: str,
                                                                  start_child) -> None:
    veth(netns, "svv0", "other0")
    child = start_child("--include", "svv*")
    child.send("fail-remove svv0")
    sh("ip", "-n", netns, "link", "del", "svv0")
    child.expect(is_cb("remove-failed", "svv0"), timeout=1)
    assert child.attached() == set()
    veth(netns, "svv2", "other2")  # and the manager keeps working
    child.expect(is_cb("add", "svv2"), timeout=1)


def test_failed_remove_of_a_live_interface_is_retried(netns: str, start_child) -> None:
    veth(netns, "svx0", "other0")
    child = start_child("--include", "svx*", "--interval", "60")
    child.send("fail-remove svx0")
    sh("ip", "-n", netns, "link", "set", "svx0", "name", "out0")
    child.expect(is_cb("remove-failed", "svx0"), timeout=1)
    assert child.attached() == {"svx0"}  # still ours until on_remove succeeds
    child.ask("reconcile", "reconciled")
    child.wait_for(is_cb("remove", "svx0"))
    assert child.attached() == set()


def test_lost_events_are_repaired_by_a_full_reconcile(netns: str, start_child) -> None:
    # A tiny event buffer and a burst of 200 links: the kernel drops events (ENOBUFS).
    child = start_child("--include", "svb*", "--interval", "60", "--rcvbuf", "1024")
    batch = "".join(f"link add svb{i}a type veth peer name svb{i}b\n" for i in range(100))
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input=batch, text=True, check=True)
    expected = {f"svb{i}{s}" for i in range(100) for s in "ab"}
    deadline = time.monotonic() + 10
    while child.attached() != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert child.attached() == expected
    lost = [e for e in child.events if e["ev"] == "log" and "ENOBUFS" in e["msg"]]
    assert lost, "the burst did not overflow the event socket: the test proves nothing"


def test_stop_is_prompt(netns: str, start_child) -> None:
    child = start_child("--include", "*", "--interval", "60")
    child.send("stop")
    stopped = child.expect(lambda e: e["ev"] == "stopped")
    assert stopped["seconds"] < 1.0 and not stopped["alive"]
    child.proc.wait(timeout=5)
    assert child.proc.returncode == 0


def test_counters_match_sysfs(host_pair) -> None:
    left, right = host_pair.left, host_pair.right
    for host in (left, right):
        host.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    child = Child(left.netns, "--include", "none")
    try:
        before = child.ask("counters", "counters")
        left.exec(sys.executable, "-c", UDP_SENDER, right.ip, "20")
        after = child.ask("counters", "counters")
    finally:
        assert "Traceback" not in child.close()
    for reading in (before, after):
        assert reading["netlink"] == reading["sysfs"]
        assert set(reading["netlink"]) == {"lo", left.ifname}
    old, new = (Counters(*r["netlink"][left.ifname]) for r in (before, after))
    # 20 datagrams of 1042 wire bytes and one ARP request (42) out: egress = tx. The ARP
    # reply and rate-limited ICMP port unreachables come in: ingress = rx.
    assert new.direction("egress") == (old.tx_packets + 21, old.tx_bytes + 20 * 1042 + 42)
    assert 1 <= new.direction("ingress")[0] - old.rx_packets <= 21
