"""The kernel matrix's scenario, run inside a test VM (or on the test machine itself):
the real sitevis-collector, installed as the collector role installs it, on a veth
between two network namespaces of this kernel. It reports what it saw as one JSON line;
the host's test (test_matrix.py) decides what is right.

Standard library only: this file runs on the guest's Python (Debian 12's 3.11, 13's
3.13) with nothing of the repository beside it but the job directory it is in:
  guest.py, sitevis_collector-*.whl, bpf/

  guest.py vm                     in a VM (PID 1's child): report on /dev/ttyS1
  guest.py native RESULT_FILE     on this machine: temporary paths and names
  guest.py send DST COUNT SIZE    UDP datagrams to DST (run inside a namespace)
  guest.py influxdb DIR           a stand-in InfluxDB on 127.0.0.1:8086 (in a namespace)
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

JOB = Path(__file__).resolve().parent
MARKER = "SITEVIS-RESULT "
PORT = 9999
# Per direction of the traced veth: (datagrams, UDP payload bytes). Frames on the wire
# are Ethernet 14 + IPv4 20 + UDP 8 + payload bytes.
TRAFFIC = {"egress": (1000, 100), "ingress": (700, 300)}
NET = "198.18.250"   # the benchmarking range; A is .1, B is .2
# Datagrams go to an address nobody has, through a permanent neighbour entry: the peer
# receives the frame, is no router and drops it silently (no ARP, no ICMP): the veth
# carries exactly the datagrams sent and nothing else (IPv6 is off).
SINK = {"a": f"{NET}.20", "b": f"{NET}.10"}
INFLUXDB = "http://127.0.0.1:8086"  # serve_influxdb, in namespace A with the collector
Result = dict[str, Any]


def sh(*cmd: str, ns: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command, in network namespace ns if given; never raises on its exit status."""
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout)


def must(*cmd: str, ns: str = "") -> str:
    proc = sh(*cmd, ns=ns)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


class Box:
    """The collector as installed on a box, and two namespaces joined by a veth."""

    def __init__(self, root: Path, tag: str) -> None:
        self.venv = root / "opt/sitevis-collector/venv"
        self.bpf = root / "usr/share/sitevis-collector/bpf"
        self.etc = root / "etc/sitevis"
        self.writes = root / "var/lib/sitevis-matrix/writes"
        self.tag = tag
        self.a, self.b = f"{tag}a", f"{tag}b"

    @property
    def bin(self) -> str:
        return str(self.venv / "bin/sitevis-collector")

    def install(self) -> Result:
        """As roles/collector/tasks/install.yml and configure.yml: a venv with the
        distribution's packages, the wheel with --no-index, the BPF sources."""
        started = time.monotonic()
        (wheel,) = JOB.glob("sitevis_collector-*.whl")
        if not (self.venv / "bin/python").exists():  # the VM image has made it already
            must("/usr/bin/python3", "-m", "venv", "--system-site-packages", str(self.venv))
        must(str(self.venv / "bin/pip"), "install", "--no-index", "--no-deps",
             "--force-reinstall", "--disable-pip-version-check", "-q", str(wheel))
        shutil.copytree(JOB / "bpf", self.bpf, dirs_exist_ok=True)
        version = must(self.bin, "--version").strip()
        return {"version": version, "wheel": wheel.name,
                "seconds": round(time.monotonic() - started, 1)}

    def config(self, name: str, **extra: object) -> str:
        """A collector config (JSON is YAML) tracing the veth in namespace A."""
        self.etc.mkdir(parents=True, exist_ok=True)
        cfg = {"site": "matrix", "box": "guest",
               "interfaces": {"include": ["veth0"], "exclude": []},
               "interval": 600,  # `once` ends at SIGTERM, after the traffic
               "influxdb": {"url": INFLUXDB, "database": "sitevis"},
               "spool": {"dir": str(self.etc / f"spool-{name}"), "max_bytes": 1 << 20},
               "bpf_dir": str(self.bpf), **extra}
        path = self.etc / f"{name}.yml"
        path.write_text(json.dumps(cfg, indent=1))
        return str(path)

    def namespaces(self) -> None:
        for ns in (self.a, self.b):
            must("ip", "netns", "add", ns)
            # No IPv6 (no neighbour discovery, no MLD) and no router (a new namespace
            # may inherit forwarding, and a router answers the datagrams to the unused
            # address with ICMP redirects and unreachables).
            must("sh", "-c", "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6; "
                 "echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6; "
                 "echo 0 >/proc/sys/net/ipv4/ip_forward", ns=ns)
            must("ip", "link", "set", "lo", "up", ns=ns)
        must("ip", "link", "add", f"{self.tag}x", "netns", self.a, "type", "veth", "peer",
             "name", f"{self.tag}y", "netns", self.b)
        for ns, old, last in ((self.a, "x", 1), (self.b, "y", 2)):
            must("ip", "link", "set", f"{self.tag}{old}", "name", "veth0", ns=ns)
            must("ip", "addr", "add", f"{NET}.{last}/24", "dev", "veth0", ns=ns)
            must("ip", "link", "set", "veth0", "up", ns=ns)
        for ns, peer, sink in ((self.a, self.b, SINK["a"]), (self.b, self.a, SINK["b"])):
            mac = must("cat", "/sys/class/net/veth0/address", ns=peer).strip()
            must("ip", "neigh", "replace", sink, "lladdr", mac, "dev", "veth0",
                 "nud", "permanent", ns=ns)

    def remove_namespaces(self) -> None:
        for ns in (self.a, self.b):
            sh("ip", "netns", "del", ns)

    def hooks(self) -> list[str]:
        """`sitevis-collector hooks` in namespace A: "veth0 ingress tcx pid 12" lines."""
        out = sh(self.bin, "hooks", ns=self.a).stdout
        return [" ".join(line.split("\t")) for line in out.splitlines()]

    def after_kill(self) -> list[str]:
        """`hooks` once the kernel has dropped a killed collector's tcx links (it does
        as it closes the dead process's descriptors)."""
        deadline = time.monotonic() + 10
        after = self.hooks()
        while any(" tcx " in h for h in after) and time.monotonic() < deadline:
            time.sleep(0.2)
            after = self.hooks()
        return after

    def wait_attached(self, collector: Collector, count: int,
                      timeout: float = 600) -> list[str]:
        """Until `count` programs of the collector (and no other) are listed by `hooks`.
        Its log says when to look: `hooks` polled during a compile would slow it."""
        collector.logged_attach.wait(timeout)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = self.hooks()
            if len(found) == count and all(h.endswith(f"pid {collector.pid}") for h in found):
                return found
            if collector.proc.poll() is not None:
                collector.reader.join()
                raise RuntimeError(f"the collector exited ({collector.proc.returncode}) "
                                   f"before it attached: {collector.log(30)}")
            time.sleep(1)
        collector.proc.kill()
        raise RuntimeError(f"not attached: hooks lists {self.hooks()}; {collector.log(10)}")

    def send(self) -> dict[str, list[int]]:
        """TRAFFIC from A (egress of A's veth0) and from B (ingress); what was sent."""
        sent = {}
        for direction, ns, sink in (("egress", self.a, SINK["a"]),
                                    ("ingress", self.b, SINK["b"])):
            count, size = TRAFFIC[direction]
            must("/usr/bin/python3", str(Path(__file__).resolve()), "send", sink,
                 str(count), str(size), ns=ns)
            sent[direction] = [count, count * (14 + 20 + 8 + size)]
        return sent

    def leftovers(self) -> Result:
        """What is on A's veth0 besides the kernel's defaults."""
        filters = [line for hook in ("ingress", "egress")
                   for line in must("tc", "filter", "show", "dev", "veth0", hook,
                                    ns=self.a).splitlines()]
        link = must("ip", "-d", "link", "show", "veth0", ns=self.a)
        qdisc = must("tc", "qdisc", "show", "dev", "veth0", ns=self.a)
        return {"hooks": self.hooks(), "tc_filters": filters, "xdp": "xdp" in link,
                "clsact": "clsact" in qdisc}


class Collector:
    """sitevis-collector COMMAND -c CONFIG in namespace A, its log read as it comes."""

    def __init__(self, box: Box, command: str, config: str) -> None:
        # ip netns exec execs the collector: the pid is the collector's.
        self.proc = subprocess.Popen(["ip", "netns", "exec", box.a, box.bin, command, "-c",
                                      config], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.stderr: list[str] = []
        self.logged_attach = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            if "attached to veth0" in line or ("veth0" in line and "failed" in line):
                self.logged_attach.set()   # now `hooks` tells: attached, or not
        self.logged_attach.set()   # it exited: nothing more to wait for

    def log(self, lines: int) -> str:
        return "\n".join(self.stderr[-lines:])

    def stop(self, sig: int) -> str:
        """Signal it; its standard output once it has exited."""
        self.proc.send_signal(sig)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=300)
        self.reader.join()
        return out


def serve_influxdb(out: Path) -> None:
    """InfluxDB as the collector sees it: 204 to /ping and to /write, whose bodies
    (gunzipped line protocol) go to out/<n>.lp; prints "ready" once listening."""

    numbers = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/write"):
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                name = out / f"{next(numbers):06d}.lp"
                name.with_suffix(".tmp").write_bytes(body)
                name.with_suffix(".tmp").rename(name)
            self.send_response(204)
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    out.mkdir(parents=True, exist_ok=True)
    with ThreadingHTTPServer(("127.0.0.1", 8086), Handler) as server:
        print("ready", flush=True)
        server.serve_forever()


def _fields(text: str) -> dict[str, str]:
    """k=v pairs of a line-protocol tag set or field set (escaped , = and space kept)."""
    parts = re.split(r"(?<!\\),", text)
    return dict(re.split(r"(?<!\\)=", part, maxsplit=1) for part in parts if "=" in part)


def totals(lines: str) -> dict[str, dict[str, dict[str, int]]]:
    """From line protocol, per measurement iface / flow and dir: packets and bytes on
    veth0 (rows and intervals summed) and the kernel's own count (iface.kernel_packets)."""
    out: dict[str, dict[str, dict[str, int]]] = {"iface": {}, "flow": {}, "kernel": {}}
    for line in lines.splitlines():
        head, fields_text, *_ = re.split(r"(?<!\\) ", line)
        measurement, _, tags_text = head.partition(",")
        tags, fields = _fields(tags_text), _fields(fields_text)
        if measurement not in ("iface", "flow") or tags.get("iface") != "veth0":
            continue
        row = out[measurement].setdefault(tags["dir"], {"packets": 0, "bytes": 0})
        for key in ("packets", "bytes"):
            row[key] += int(fields[key].rstrip("i"))
        if measurement == "iface" and "kernel_packets" in fields:
            kernel = out["kernel"].setdefault(tags["dir"], {"packets": 0})
            kernel["packets"] += int(fields["kernel_packets"].rstrip("i"))
    return out


def killed(box: Box, config: str, count: int) -> Result:
    """`run`, attached, then SIGKILL: what was attached, and what is left after."""
    collector = Collector(box, "run", config)
    running = box.wait_attached(collector, count)
    collector.stop(signal.SIGKILL)
    return {"running": running, "after_kill": box.after_kill()}


def once(box: Box, config: str, count: int) -> Result:
    """`once` attached (replacing what a killed run left), traffic, SIGTERM: its exit,
    what was attached, what was sent and counted, and what it left."""
    collector = Collector(box, "once", config)
    running = box.wait_attached(collector, count)
    sent = box.send()
    time.sleep(0.5)
    out = collector.stop(signal.SIGTERM)
    return {"rc": collector.proc.returncode, "stderr": collector.stderr[-5:],
            "running": running, "sent": sent, **totals(out), "left": box.leftovers()}


def delivered(box: Box, config: str, count: int) -> Result:
    """`run` attached, traffic, two more intervals delivered to the stand-in InfluxDB,
    SIGKILL: what was attached, sent, delivered (summed over the intervals), left."""
    collector = Collector(box, "run", config)
    running = box.wait_attached(collector, count)
    sent = box.send()
    writes = len(list(box.writes.glob("*.lp")))
    deadline = time.monotonic() + 300
    while len(list(box.writes.glob("*.lp"))) < writes + 2 and time.monotonic() < deadline:
        if collector.proc.poll() is not None:
            raise RuntimeError(f"the collector exited ({collector.proc.returncode}): "
                               f"{collector.log(20)}")
        time.sleep(0.5)
    collector.stop(signal.SIGKILL)
    lines = "".join(p.read_text() for p in sorted(box.writes.glob("*.lp")))
    return {"running": running, "sent": sent, **totals(lines),
            "writes": len(list(box.writes.glob("*.lp"))), "after_kill": box.after_kill()}


def step(result: Result, name: str, action: Callable[[], Result]) -> None:
    """result[name] = what the step saw, or {"error": ...}: later steps still run."""
    started = time.monotonic()
    try:
        result[name] = action()
    except Exception:
        result[name] = {"error": traceback.format_exc()[-2000:]}
    result[name]["seconds"] = round(time.monotonic() - started, 1)
    error = result[name].get("error", "").strip().splitlines()
    print(f"sitevis-guest: {name} {'failed' if error else 'done'} in "
          f"{result[name]['seconds']} s{': ' + error[-1] if error else ''}", flush=True)


def command(box: Box, *args: str, ns: str = "") -> Result:
    proc = sh(box.bin, *args, ns=ns, timeout=600)
    return {"rc": proc.returncode, "stdout": proc.stdout.splitlines(),
            "stderr": proc.stderr.strip().splitlines()[-3:]}


def scenario(box: Box, result: Result) -> None:
    result["install"] = box.install()
    tc = box.config("tc")               # the role's defaults: hook tc, tc_attach auto
    xdp = box.config("xdp", hook="xdp", interval=1)
    box.namespaces()
    influxdb = subprocess.Popen(["ip", "netns", "exec", box.a, "/usr/bin/python3",
                                 str(Path(__file__).resolve()), "influxdb", str(box.writes)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert influxdb.stdout is not None and influxdb.stdout.readline() == "ready\n"
        step(result, "check", lambda: command(box, "check", "-c", tc, ns=box.a))
        step(result, "tc_killed", lambda: killed(box, tc, 2))
        step(result, "tc_once", lambda: once(box, tc, 2))
        step(result, "xdp_run", lambda: delivered(box, xdp, 1))
        step(result, "cleanup", lambda: {**command(box, "cleanup", ns=box.a),
                                         "left": box.leftovers()})
    finally:
        influxdb.kill()
        influxdb.wait()
        box.remove_namespaces()


def run(box: Box) -> Result:
    started = time.monotonic()
    result: Result = {"release": os.uname().release, "python": sys.version.split()[0],
                      "error": None}
    try:
        scenario(box, result)
    except Exception:
        result["error"] = traceback.format_exc()[-3000:]
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def send(dst: str, count: int, size: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            sock.sendto(b"x" * size, (dst, PORT))
            if i % 100 == 99:
                time.sleep(0.002)  # let the receiving side's queue drain


def main(argv: list[str]) -> int:
    if argv[:1] == ["send"]:
        send(argv[1], int(argv[2]), int(argv[3]))
        return 0
    if argv[:1] == ["influxdb"]:
        serve_influxdb(Path(argv[1]))
        return 0
    if argv[:1] == ["vm"]:
        result = run(Box(Path("/"), "svk"))
        fd = os.open("/dev/ttyS1", os.O_WRONLY | os.O_NOCTTY)
        os.write(fd, (MARKER + json.dumps(result) + "\n").encode())
        os.close(fd)
        return 0
    if argv[:1] == ["native"] and len(argv) == 2:
        with tempfile.TemporaryDirectory(prefix="sitevis-matrix-") as tmp:
            result = run(Box(Path(tmp), f"svk{os.getpid() % 100000}"))
        Path(argv[1]).write_text(MARKER + json.dumps(result) + "\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
