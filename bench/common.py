"""Shared parts of the benchmarks: a quiet netns pair, trafgen, BPF stats, tables.

Everything here is bounded in time and cleans up after itself: the namespaces go
away even when a benchmark fails, and kernel.bpf_stats_enabled is put back.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
if str(REPO) not in sys.path:  # tests.harness lives at the repository root
    sys.path.insert(0, str(REPO))

from sitevis_collector.hooks.tcx import link as tcx_link  # noqa: E402
from sitevis_collector.hooks.tcx import tcx_available  # noqa: E402
from sitevis_collector.kernel.bpfstats import enabled_stats  # noqa: E402

from tests.harness.netns import Host, HostPair, create_pair, destroy_pair  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
ETH_IP_UDP = 14 + 20 + 8
# Destination MAC that is not the peer's: the peer sees the frame at TC ingress and
# then drops it as PACKET_OTHERHOST in ip_rcv, so the receive side stays cheap and
# sends nothing back (no ICMP port unreachable).
DST_MAC = "02:00:00:00:00:02"
SRC_MAC = "02:00:00:00:00:01"
TRAFGEN_TIMEOUT = 120.0


class BenchError(RuntimeError):
    """The benchmark cannot run here (one line for the user)."""


# --- checks -----------------------------------------------------------------------------

def unusable_reason() -> str | None:
    """None when the benchmarks can run here, else why not."""
    from tests.harness.bpf import bcc_unusable_reason

    reason = bcc_unusable_reason()
    if reason:
        return reason
    for tool in ("trafgen", "ip"):
        if not _which(tool):
            return f"{tool} not found (Debian packages netsniff-ng, iproute2)"
    return None


def _which(name: str) -> str | None:
    import shutil

    path = os.environ.get("PATH", "/usr/bin:/bin")
    return shutil.which(name, path=f"{path}:/usr/sbin:/sbin")


# --- tables -----------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Table:
    """One benchmark's result: a titled text table plus the targets it judged."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)  # target -> passed
    data: dict[str, object] = field(default_factory=dict)  # raw values for tests

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(c) for c in cells])

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) \
                + " |"

        out = [self.title, sep, line(self.columns), sep.replace("-", "=")]
        out += [line(r) for r in self.rows]
        out.append(sep)
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


# --- traffic ----------------------------------------------------------------------------

def trafgen_conf(frame_bytes: int, *, srcs: int, ports: int, dst: str,
                 vary: str = "sport") -> str:
    """One trafgen packet whose (source address, port) walk through srcs x ports flows.

    The source address (198.18.128.0 + i) and the port advance together on every
    packet; with coprime periods (callers pick them) N consecutive packets are N
    distinct flows up to srcs * ports. vary: "sport" (from 10000) or "dport" (from 1,
    so the service names differ too).
    """
    if frame_bytes < ETH_IP_UDP:
        raise ValueError(f"a frame needs at least {ETH_IP_UDP} bytes")
    if not 1 <= srcs <= 32768 or not 1 <= ports <= 30000:
        raise ValueError("srcs must be in 1..32768 and ports in 1..30000")
    lo = 0x8000  # 198.18.128.0: inside 198.18.0.0/15, clear of the pairs' /30s

    def walk(first: int, n: int) -> str:  # trafgen refuses dinc(a, a)
        return f"dinc({first}, {first + n - 1})" if n > 1 else str(first)

    src = (f"saddr=198.18.128.0, saddr[2:2]={walk(lo, srcs)}" if srcs > 1
           else "saddr=198.18.128.0")
    if vary == "sport":
        udp = f"sp={walk(10000, ports)}, dp=9"
    elif vary == "dport":
        udp = f"sp=40000, dp={walk(1, ports)}"
    else:
        raise ValueError("vary must be 'sport' or 'dport'")
    fill = frame_bytes - ETH_IP_UDP
    payload = f",\n  fill(0x41, {fill})" if fill else ""
    return (f"{{\n  eth(da={DST_MAC}, sa={SRC_MAC}),\n"
            f"  ipv4({src}, daddr={dst}, ttl=64),\n"
            f"  udp({udp}){payload}\n}}\n")


@dataclass(frozen=True)
class TrafgenRun:
    requested: int
    sent: int          # what trafgen says it sent
    wall_s: float
    cpu_s: float       # trafgen's own user + system time

    @property
    def pps(self) -> float:
        return self.sent / self.wall_s if self.wall_s > 0 else 0.0


def trafgen_command(host: Host, conf: Path, count: int, *, qdisc_path: bool = True,
                    cpus: int = 1, rate_pps: int | None = None) -> list[str]:
    """trafgen from host's namespace; -q keeps the qdisc path so TC egress sees frames.

    Without -q trafgen sets PACKET_QDISC_BYPASS and TC egress sees nothing.
    --no-sock-mem and --notouch-irq keep it from changing system-wide settings.
    With a rate (-b) trafgen sends each second's packets at full speed, then idles.
    """
    cmd = ["ip", "netns", "exec", host.netns, "trafgen", "--dev", host.ifname,
           "--conf", str(conf), "-n", str(count), "--cpus", str(cpus),
           "--no-sock-mem", "--notouch-irq"]
    if qdisc_path:
        cmd.append("-q")
    if rate_pps:
        cmd += ["-b", f"{rate_pps}pps"]
    return cmd


def run_trafgen(host: Host, conf: Path, count: int, *, qdisc_path: bool = True,
                cpus: int = 1, rate_pps: int | None = None) -> TrafgenRun:
    """Run trafgen (trafgen_command) to the end; what it sent and its own CPU time."""
    cmd = trafgen_command(host, conf, count, qdisc_path=qdisc_path, cpus=cpus,
                          rate_pps=rate_pps)
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        rusage = _wait_rusage(proc, TRAFGEN_TIMEOUT)
        wall = time.monotonic() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"trafgen exited {proc.returncode}: {text.strip()[-300:]}")
    found = re.findall(r"(\d+)\s+packets outgoing", text)
    sent = int(found[-1]) if found else -1
    return TrafgenRun(count, sent, wall, rusage.ru_utime + rusage.ru_stime)


def _wait_rusage(proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return rusage
        if time.monotonic() > deadline:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise BenchError(f"{proc.args[4]!s} did not finish in {timeout:.0f}s; "  # type: ignore[index]
                             "killed")
        time.sleep(0.005)


# --- the lab: two namespaces and a veth -------------------------------------------------

class Lab:
    """A quiet veth pair (IPv6 off, static neighbours) with clsact on both ends.

    left sends; the benchmarks watch left's TC egress (and right's ingress).
    """

    def __init__(self) -> None:
        from pyroute2 import NetNS

        from tests.integration.collector.kernel_kit import quiet

        self.tmp = Path(tempfile.mkdtemp(prefix="sitevis-bench-"))
        self.pair: HostPair = create_pair()
        try:
            quiet(self.pair)
            self.ns = {h.netns: NetNS(h.netns) for h in (self.pair.left, self.pair.right)}
            self.ifindex = {h.netns: self.ns[h.netns].link_lookup(ifname=h.ifname)[0]
                            for h in (self.pair.left, self.pair.right)}
            for netns, idx in self.ifindex.items():
                self.ns[netns].tc("add", "clsact", idx)
        except BaseException:
            self.close()
            raise
        self._confs: dict[tuple, Path] = {}

    @property
    def left(self) -> Host:
        return self.pair.left

    @property
    def right(self) -> Host:
        return self.pair.right

    def conf(self, frame_bytes: int, srcs: int, ports: int, vary: str = "sport") -> Path:
        key = (frame_bytes, srcs, ports, vary)
        if key not in self._confs:
            path = self.tmp / f"flows-{frame_bytes}-{srcs}x{ports}-{vary}.cfg"
            path.write_text(trafgen_conf(frame_bytes, srcs=srcs, ports=ports,
                                         dst=self.right.ip, vary=vary))
            self._confs[key] = path
        return self._confs[key]

    def counters(self, host: Host) -> dict[str, int]:
        """The kernel's own counters of host's veth (rx_/tx_ packets, bytes, dropped)."""
        idx = self.ifindex[host.netns]
        for msg in self.ns[host.netns].get_links(idx):
            stats = msg.get_attr("IFLA_STATS64")
            return {k: stats[k] for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes",
                                          "rx_dropped", "tx_dropped")}
        raise BenchError(f"{host.ifname} in {host.netns} vanished")

    def attach_ref(self, host: Host, fd: int, name: str,
                   ingress: bool = False) -> Callable[[], None]:
        """Put a reference program on host's TC hook the way the collector attaches its
        own (a tcx link where the kernel has tcx, else a clsact filter), so a comparison
        with sitevis is one of programs, not of attach mechanisms; returns its remover.

        pyroute2's NetNS works through a forked helper: it must be opened after the
        program was loaded, or the helper does not have the program's fd.
        """
        if tcx_available(host.netns):
            fd_link = tcx_link(fd, self.ifindex[host.netns], "ingress" if ingress else "egress",
                               host.netns)
            return lambda: os.close(fd_link)
        from pyroute2 import NetNS

        ipr, idx = NetNS(host.netns), self.ifindex[host.netns]
        parent = "ffff:fff2" if ingress else "ffff:fff3"
        try:
            ipr.tc("add-filter", "bpf", idx, ":1", fd=fd, name=name, parent=parent,
                   classid=1, direct_action=True, prio=10)
        except BaseException:
            ipr.close()
            raise

        def remove() -> None:
            try:
                ipr.tc("del-filter", "bpf", idx, ":1", parent=parent, prio=10)
            finally:
                ipr.close()
        return remove

    def close(self) -> None:
        for ipr in getattr(self, "ns", {}).values():
            with contextlib.suppress(Exception):
                ipr.close()
        destroy_pair(self.pair) if hasattr(self, "pair") else None
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    reason = unusable_reason()
    if reason:
        raise BenchError(reason)
    the_lab = Lab()
    # SIGTERM (e.g. a timeout from outside) still removes the namespaces.
    old = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield the_lab
    finally:
        signal.signal(signal.SIGTERM, old)
        the_lab.close()


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def settle(seconds: float = 0.2) -> None:
    """Frames cross a veth in softirq context: give the backlog time to drain."""
    time.sleep(seconds)


# --- BPF programs -----------------------------------------------------------------------

class RefProgram:
    """One of the two reference programs in bench/, compiled with BCC."""

    def __init__(self, source: str, function: str, tables: Sequence[str],
                 cflags: Sequence[str] = ()) -> None:
        from bcc import BPF

        self.name = function
        self.bpf = BPF(src_file=str(BENCH_DIR / source).encode(), cflags=list(cflags))
        self.fd = self.bpf.load_func(function.encode(), BPF.SCHED_CLS).fd
        self._tables = {name.encode() for name in tables}

    def counted(self) -> int:
        """Packets the program has counted so far (every per-CPU slot summed)."""
        total = 0
        for name in (b"packets", b"other"):  # per-CPU array slots
            if name in self._tables:
                total += sum(self.bpf[name][ct.c_int(0)])
        if b"flows" in self._tables:
            total += sum(v.packets for vals in self.bpf[b"flows"].values() for v in vals)
        return total

    def reset(self) -> None:
        for name in self._tables:
            table = self.bpf[name]
            if name == b"flows":
                table.clear()
            else:
                table.zero()

    def close(self) -> None:
        self.bpf.cleanup()


def counter_program() -> RefProgram:
    return RefProgram("counter.c", "bench_counter", ["packets"])


def flow5_program(table_size: int = 65536) -> RefProgram:
    return RefProgram("flow5.c", "bench_flow5", ["flows", "other"],
                      [f"-DFLOW_ENTRIES={table_size}"])


def default_config(url: str = "http://127.0.0.1:8086", **extra: object):
    """The collector's config with every default, as a fresh install would have it."""
    from sitevis_collector.config import parse_config

    data: dict[str, object] = {"site": "bench", "box": "bench",
                               "influxdb": {"url": url, "database": "bench"}}
    data.update(extra)
    return parse_config(data, "<bench>")


def sitevis_settings(cfg=None, **override):
    """KernelSettings as the collector derives them from its config (defaults)."""
    from sitevis_collector.kernel.program import KernelSettings

    cfg = cfg or default_config()
    values = {"table_size": cfg.flow_table_size, "sample_rate": cfg.sample_rate,
              "sample_limit": cfg.sample_rate_limit, "hook": cfg.hook}
    values.update(override)
    return KernelSettings(**values)


# --- kernel statistics --------------------------------------------------------------------

# One implementation with the collector: BPF_ENABLE_STATS fd, sysctl as the fallback.
bpf_stats = enabled_stats


def prog_run_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a loaded program, from /proc/self/fdinfo of its fd."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("run_time_ns", "run_cnt"):
            fields[key] = int(value.strip())
    if len(fields) != 2:
        raise BenchError("this kernel does not report run_time_ns/run_cnt in fdinfo")
    return fields["run_time_ns"], fields["run_cnt"]


def busy_clock_ns() -> int:
    """Busy CPU time of the whole VM so far, summed over CPUs: wall x CPUs minus cpuidle's
    idle residency (exact), or /proc/stat's busy ticks (10 ms steps) without cpuidle."""
    wall, idle = idle_residency_ns()
    if idle is not None:
        return wall * len(_CPUIDLE_TIMES) - idle
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (
            int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) * 1_000_000_000 // CLK_TCK


_CPUIDLE_TIMES: dict[int, list[Path]] = {}
for _state in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpuidle/state*/time")):
    _CPUIDLE_TIMES.setdefault(int(_state.parts[-4][3:]), []).append(_state)


def idle_residency_ns() -> tuple[int, int | None]:
    """(monotonic ns, idle ns summed over every CPU and idle state) from cpuidle's
    per-state residency counters (microseconds).

    /proc/stat samples CPU time at each 10 ms tick: over a 2 s run the 20-40 ms that a
    BPF program adds are within a few ticks of noise. cpuidle counts residency exactly,
    but a CPU adds an idle period only when it leaves it: so first run this thread on
    every CPU once, which ends their current idle periods, then read.
    """
    # Every CPU must have cpuidle counters and be one this thread may visit.
    if (len(_CPUIDLE_TIMES) != os.cpu_count()
            or not set(_CPUIDLE_TIMES) <= os.sched_getaffinity(0)):
        return time.monotonic_ns(), None
    home = os.sched_getaffinity(0)
    try:
        for cpu in _CPUIDLE_TIMES:
            os.sched_setaffinity(0, {cpu})  # returns once this thread runs there
        wall = time.monotonic_ns()
        idle_us = sum(int(p.read_text()) for paths in _CPUIDLE_TIMES.values() for p in paths)
    finally:
        os.sched_setaffinity(0, home)
    return wall, idle_us * 1000


def task_cpu_ns(pid: int) -> int:
    """CPU time of one task so far, in ns (/proc/PID/schedstat; 0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


class Sitevis:
    """sitevis's own program, loaded and attached as the collector does it by default
    (hooks_for: tcx links where the kernel has tcx, else clsact filters)."""

    def __init__(self, the_lab: Lab, settings=None) -> None:
        from sitevis_collector.kernel.drain import Drainer
        from sitevis_collector.kernel.program import FlowProgram

        self.lab = the_lab
        self.program = FlowProgram(settings or sitevis_settings())
        self.drainer = Drainer(self.program)
        self._hooks: dict[str, object] = {}

    @property
    def mechanism(self) -> str:
        """How the tc hook is attached here: tcx or clsact."""
        return "tcx" if tcx_available(self.lab.left.netns) else "clsact"

    def fd(self, direction: str = "egress") -> int:
        return self.program.function_fd(direction)

    def attach(self, host: Host, directions: tuple[str, ...]) -> Callable[[], None]:
        """Our program on host's veth (the given directions); returns its remover."""
        from sitevis_collector.hooks import hooks_for

        hooks = self._hooks.get(host.netns)
        if hooks is None:
            hooks = self._hooks[host.netns] = hooks_for(self.program, host.netns)
        idx = self.lab.ifindex[host.netns]
        hooks.attach(idx, directions)  # type: ignore[attr-defined]
        return lambda: hooks.detach(idx)  # type: ignore[attr-defined]

    def drain(self):
        """DrainResult since the previous drain; both veth ends are named veth0."""
        names = {idx: "veth0" for idx in self.lab.ifindex.values()}
        return self.drainer.drain(names)

    def close(self) -> None:
        for hooks in self._hooks.values():
            with contextlib.suppress(Exception):
                hooks.detach_all()  # type: ignore[attr-defined]
                hooks.close()  # type: ignore[attr-defined]
        self.program.close()


def total(result, direction: str) -> tuple[int, int]:
    """(packets, bytes) of one direction in a DrainResult's exact totals."""
    rows = [c for (_, d), c in result.totals.items() if d == direction]
    return sum(c.packets for c in rows), sum(c.bytes for c in rows)


def flow_sum(result, direction: str) -> tuple[int, int, int]:
    """(packets, bytes, flows) of one direction over flow rows and overflow buckets."""
    flows = [c for k, c in result.flows.items() if k.direction == direction]
    over = [c for (_, d, *_), c in result.overflow.items() if d == direction]
    return (sum(c.packets for c in flows + over), sum(c.bytes for c in flows + over),
            len(flows))


def run_cli(measure_in_lab: Callable[[Lab], Table]) -> int:
    """A benchmark's command line: measure in a fresh lab, print the table; exit 0 when
    every target passed, 1 when one failed, 2 when the benchmark could not run."""
    try:
        with lab() as the_lab:
            table = measure_in_lab(the_lab)
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    print(table.render())
    return 0 if table.passed else 1


def with_sitevis(measure_one: Callable[[Lab, Sitevis], Table]) -> Callable[[Lab], Table]:
    """Load sitevis's program into the lab for the measurement, and unload it after."""
    def run(the_lab: Lab) -> Table:
        sitevis = Sitevis(the_lab)
        try:
            return measure_one(the_lab, sitevis)
        finally:
            sitevis.close()
    return run
