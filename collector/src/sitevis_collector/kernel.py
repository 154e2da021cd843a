"""Compile and load the sitevis BPF program with BCC (no attaching: see tc.py, xdp.py)."""

from __future__ import annotations

import ctypes as ct
import os
from dataclasses import dataclass
from pathlib import Path

from sitevis_collector.records import EGRESS, INGRESS

SOURCE_NAME = "sitevis.c"
INSTALLED_BPF_DIR = Path("/usr/share/sitevis-collector/bpf")
# In a source checkout: <repo>/collector/src/sitevis_collector/kernel.py -> <repo>/bpf
CHECKOUT_BPF_DIR = Path(__file__).resolve().parents[3] / "bpf"

# Per-CPU counter indices; mirror CNT_* in bpf/sitevis.c.
CNT_OVERFLOW = 0
CNT_RINGBUF_LOST = 1
CNT_RATE_LIMITED = 2
CNT_TRUNCATED = 3
CNT_SAMPLED = 4
CNT_UNACCOUNTED = 5
CNT_MAX = 6

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
_CAP_BPF = 39


class KernelError(Exception):
    """A failure of the kernel side, with a one-line message for the user."""


class NoPrivilegesError(KernelError):
    pass


class CompileError(KernelError):
    pass


class UnsupportedError(KernelError):
    """The running kernel lacks something the program needs."""


class InterfaceGoneError(KernelError):
    """The interface vanished while we attached to or detached from it."""


@dataclass(frozen=True, slots=True)
class KernelSettings:
    """What the compiled program is sized and tuned for."""

    table_size: int = 65536       # flow table entries (two tables of this size are swapped)
    overflow_size: int = 4096     # (iface, dir, proto) overflow buckets
    totals_size: int = 4096       # (iface, dir) totals; two per attached interface
    sample_rate: int = 0          # sample 1 in N packets; 0 = no sampling
    sample_limit: int = 1000      # samples per second for the whole box (split per CPU)
    sample_burst: int = 100       # token bucket depth per CPU
    ringbuf_pages: int = 64       # ring buffer size in pages, a power of two
    percpu_flows: bool = False    # shared flow table by default: measured no slower here
    hook: str = "tc"              # "tc" (ingress + egress) | "xdp" (ingress only)

    def cflags(self) -> list[str]:
        for name in ("table_size", "overflow_size", "totals_size", "sample_limit",
                     "sample_burst", "ringbuf_pages"):
            if getattr(self, name) < 1:
                raise KernelError(f"kernel setting {name} must be at least 1")
        if self.sample_rate < 0:
            raise KernelError("kernel setting sample_rate must be 0 (off) or positive")
        if self.ringbuf_pages & (self.ringbuf_pages - 1):
            raise KernelError("kernel setting ringbuf_pages must be a power of two")
        if self.hook not in ("tc", "xdp"):
            raise KernelError(f"kernel setting hook must be 'tc' or 'xdp', not {self.hook!r}")
        # The rate limit is a per-CPU token bucket: split the box-wide limit.
        per_cpu = max(1, self.sample_limit // _possible_cpus())
        flags = [
            f"-DFLOW_ENTRIES={self.table_size}",
            f"-DOVERFLOW_ENTRIES={self.overflow_size}",
            f"-DTOTALS_ENTRIES={self.totals_size}",
            f"-DSAMPLE_N={self.sample_rate}",
            f"-DSAMPLE_COST_NS={1_000_000_000 // per_cpu}ULL",
            f"-DSAMPLE_BURST={self.sample_burst}ULL",
            f"-DRINGBUF_PAGES={self.ringbuf_pages}",
            f"-DPERCPU_FLOWS={int(self.percpu_flows)}",
        ]
        if self.hook == "xdp":
            flags.append("-DSITEVIS_XDP")
        return flags


def _possible_cpus() -> int:
    """Number of possible CPUs (per-CPU maps have one slot for each), e.g. "0-3,8-11"."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def find_bpf_dir(bpf_dir: str | Path | None = None) -> Path:
    """The directory holding sitevis.c: the given one, else the checkout this code runs
    from (so a checkout never picks up an older installed copy), else the installed one."""
    candidates = [Path(bpf_dir)] if bpf_dir else [CHECKOUT_BPF_DIR, INSTALLED_BPF_DIR]
    for directory in candidates:
        if (directory / SOURCE_NAME).is_file():
            return directory
    tried = ", ".join(str(d) for d in candidates)
    raise CompileError(f"BPF source {SOURCE_NAME} not found in {tried}")


# Oldest kernels with what the program uses: the BPF ring buffer (5.8) for TC;
# bpf_xdp_load_bytes / bpf_xdp_get_buff_len (5.18) for XDP.
MIN_KERNEL = {"tc": (5, 8), "xdp": (5, 18)}


def check_kernel_version(hook: str, release: str | None = None) -> None:
    """Raise UnsupportedError when the running kernel is too old for the hook."""
    release = release or os.uname().release
    try:
        version = tuple(int(part) for part in release.split("-")[0].split(".")[:2])
    except ValueError:
        return  # unknown scheme: let loading decide
    need = MIN_KERNEL[hook]
    if version < need:
        raise UnsupportedError(f"kernel {release} is too old for the {hook} hook "
                               f"(needs {need[0]}.{need[1]} or later)")


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges() -> None:
    """Raise NoPrivilegesError unless we may load BPF and change TC/XDP hooks."""
    caps = _effective_caps()
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    if not (has(_CAP_SYS_ADMIN) or has(_CAP_BPF)):
        raise NoPrivilegesError("loading BPF needs CAP_BPF or CAP_SYS_ADMIN (run as root)")
    if not has(_CAP_NET_ADMIN):
        raise NoPrivilegesError("attaching to TC/XDP hooks needs CAP_NET_ADMIN (run as root)")


class FlowProgram:
    """The compiled and loaded sitevis program: its entry points and maps."""

    def __init__(self, settings: KernelSettings | None = None,
                 bpf_dir: str | Path | None = None) -> None:
        self.settings = settings or KernelSettings()
        cflags = self.settings.cflags()
        source = find_bpf_dir(bpf_dir) / SOURCE_NAME
        check_kernel_version(self.settings.hook)
        check_privileges()
        try:
            from bcc import BPF
        except ImportError as exc:
            raise UnsupportedError("BCC is not installed (Debian package python3-bpfcc)") from exc
        self._bcc = BPF
        try:
            self.bpf = BPF(src_file=str(source).encode(), cflags=cflags)
        except Exception as exc:  # BCC raises bare Exception; compiler output went to stderr
            raise CompileError(f"compiling {source} failed ({_first_line(exc)}); "
                               "are kernel headers installed?") from exc
        self._fds: dict[str, int] = {}
        try:
            for direction in self.directions:
                name = self.function_name(direction)
                kind = BPF.XDP if self.settings.hook == "xdp" else BPF.SCHED_CLS
                self._fds[direction] = self.bpf.load_func(name.encode(), kind).fd
        except Exception as exc:
            self.bpf.cleanup()
            raise UnsupportedError(f"the kernel rejected the BPF program: {_first_line(exc)}"
                                   ) from exc
        self._tables = [self.bpf[b"flows_a"], self.bpf[b"flows_b"]]
        self._active = 0
        self._set_active(0)

    @property
    def hook(self) -> str:
        return self.settings.hook

    @property
    def directions(self) -> tuple[str, ...]:
        return (INGRESS,) if self.settings.hook == "xdp" else (INGRESS, EGRESS)

    def function_name(self, direction: str) -> str:
        if self.settings.hook == "xdp":
            return "sitevis_xdp"
        return f"sitevis_{direction}"

    def function_fd(self, direction: str) -> int:
        return self._fds[direction]

    def _set_active(self, index: int) -> None:
        from bcc.libbcc import lib

        outer = self.bpf[b"active_flows"]
        key, value = ct.c_int(0), ct.c_int(self._tables[index].map_fd)
        # Updating a map-in-map waits (synchronize_rcu) for every program that may
        # still hold the previous inner map: after this returns, nobody writes it.
        if lib.bpf_update_elem(outer.map_fd, ct.byref(key), ct.byref(value), 0) != 0:
            err = ct.get_errno()
            raise UnsupportedError(f"switching flow tables failed: {os.strerror(err)}")
        self._active = index

    def swap_flows(self):
        """Point the program at the other (empty) flow table; return the old one.

        The returned BCC table is no longer written by any program and can be read
        and emptied without losing or double-counting a packet.
        """
        old = self._active
        self._set_active(1 - old)
        return self._tables[old]

    def close(self) -> None:
        """Release maps and programs (attached hooks keep their own references)."""
        self.bpf.cleanup()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def hooks_for(program: FlowProgram, netns: str | None = None):
    """TcHooks or XdpHooks, whichever the program was compiled for."""
    if program.hook == "xdp":
        from sitevis_collector.xdp import XdpHooks

        return XdpHooks(program, netns)
    from sitevis_collector.tc import TcHooks

    return TcHooks(program, netns)
