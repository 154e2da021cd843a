"""Load the sitevis BPF program (compiled by BCC in a child: compiler.py); no attaching
(see tc.py, xdp.py)."""

from __future__ import annotations

import ctypes as ct
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sitevis_collector.errors import (
    CompileError,
    KernelError,
    NoPrivilegesError,
    UnsupportedError,
)
from sitevis_collector.kernel import bpfsys, capabilities, layout
from sitevis_collector.kernel.maps import BpfMap, MapLayoutError
from sitevis_collector.kernel.structs import MAP_TYPES, RINGBUF_MAP
from sitevis_collector.records import EGRESS, INGRESS

SOURCE_NAME = "sitevis.c"
# The entry points' program names (FlowProgram.function_name): how any sitevis flow
# program on a hook is recognised, whoever loaded it. Other sitevis programs (the
# readiness probe) have other names and are never taken for one.
FLOW_PROGRAM_NAMES = frozenset({"sitevis_ingress", "sitevis_egress", "sitevis_xdp"})
INSTALLED_BPF_DIR = Path("/usr/share/sitevis-collector/bpf")
# In a source checkout: <repo>/collector/src/sitevis_collector/kernel/program.py -> <repo>/bpf
CHECKOUT_BPF_DIR = Path(__file__).resolve().parents[4] / "bpf"



@dataclass(frozen=True, slots=True)
class KernelSettings:
    """What the compiled program is sized and tuned for."""

    table_size: int = 65536       # flow table entries (two tables of this size are swapped)
    overflow_size: int = 4096     # (iface, dir, proto) overflow buckets
    totals_size: int = 4096       # (iface, dir) totals; two per attached interface
    sample_rate: int = 0          # sample 1 in N packets; 0 = no sampling
    sample_limit: int = 100       # samples per second for the whole box (see cflags)
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
        # The limit is per box; the kernel's token bucket is per CPU, so each online CPU
        # gets an equal share (a CPU that sends alone gets its share, not the whole).
        per_cpu = max(1, self.sample_limit // online_cpus())
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


def check_privileges() -> None:
    """Raise NoPrivilegesError unless we may load BPF and change TC/XDP hooks."""
    lacking = capabilities.missing()
    if lacking:
        raise NoPrivilegesError(capabilities.lacking_message(lacking))


def online_cpus() -> int:
    return os.sysconf("SC_NPROCESSORS_ONLN") or 1


class FlowProgram:
    """The loaded sitevis program: its entry points and maps, held by file descriptor.

    BCC compiles and loads it in a child process (compiler.py), so LLVM never enters
    this one; the child sends the program and map descriptors back and exits.
    """

    def __init__(self, settings: KernelSettings | None = None,
                 bpf_dir: str | Path | None = None) -> None:
        self.settings = settings or KernelSettings()
        cflags = self.settings.cflags()
        source = find_bpf_dir(bpf_dir) / SOURCE_NAME
        check_kernel_version(self.settings.hook)
        check_privileges()
        # BCC compiles the source from memory: its headers are found by -I.
        request = {"source": str(source), "cflags": [*cflags, f"-I{source.parent}"],
                   "kind": self.settings.hook,
                   "functions": [self.function_name(d) for d in self.directions],
                   "maps": [*MAP_TYPES, RINGBUF_MAP]}
        reply, fds = _compile_in_child(request)
        if "error" in reply:
            message = reply["message"]
            if reply["error"] == "compile":
                raise CompileError(f"compiling {source} failed ({message}); "
                                   "are kernel headers installed?")
            if reply["error"] == "load":
                raise UnsupportedError(f"the kernel rejected the BPF program: {message}")
            raise UnsupportedError(message)
        functions, names = reply["functions"], reply["maps"]
        self._fds = dict(zip(self.directions, fds[:len(functions)], strict=True))
        map_fds = dict(zip(names, fds[len(functions):], strict=True))
        self.maps: dict[str, BpfMap] = {}
        self.ringbuf_fd: int | None = map_fds.pop(RINGBUF_MAP, None)
        try:
            layout.check_counters(source.parent)
            layout.check_maps(reply.get("layouts", {}))
            for name, fd in map_fds.items():
                key_type, value_type = MAP_TYPES[name]
                self.maps[name] = BpfMap(fd, name, key_type, value_type)
        except (MapLayoutError, layout.LayoutMismatch) as exc:
            for name, fd in map_fds.items():
                if name not in self.maps:  # the others close with their BpfMap
                    os.close(fd)
            self.close()
            raise CompileError(str(exc)) from exc
        self._tables = [self.maps["flows_a"], self.maps["flows_b"]]
        try:
            for index, table in enumerate(self._tables):
                self.maps["active_flows"][ct.c_int(index)] = ct.c_int(table.map_fd)
        except OSError as exc:
            self.close()
            raise UnsupportedError(f"setting up the flow tables failed: {exc.strerror}"
                                   ) from exc
        self.epoch = 0  # the one the program counts into (current_epoch)

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

    @property
    def prog_ids(self) -> frozenset[int]:
        """The kernel's ids of this program's entry points: what makes a hook ours."""
        return frozenset(bpfsys.obj_id(fd) for fd in self._fds.values())

    def swap_epoch(self) -> tuple[int, BpfMap]:
        """Make the other epoch current; return the old one and its flow table.

        After this returns no program writes the old epoch any more: its flow table,
        totals and overflow buckets can be read and emptied without losing or
        double-counting a packet.
        """
        old = self.epoch
        try:
            self.maps["current_epoch"][ct.c_int(0)] = ct.c_uint32(1 - old)
            # Rewriting a map-in-map slot (with the same table) waits for every running
            # program (synchronize_rcu): those that read the old epoch have finished.
            self.maps["active_flows"][ct.c_int(old)] = ct.c_int(self._tables[old].map_fd)
        except OSError as exc:
            raise UnsupportedError(f"switching epochs failed: {exc.strerror}") from exc
        self.epoch = 1 - old
        return old, self._tables[old]

    def close(self) -> None:
        """Release maps and programs (attached hooks keep their own references)."""
        for bpf_map in self.maps.values():
            bpf_map.close()
        self.maps.clear()
        for fd in [*self._fds.values(), self.ringbuf_fd]:
            if fd is not None and fd >= 0:
                os.close(fd)
        self._fds.clear()
        self.ringbuf_fd = None


_COMPILER = Path(__file__).with_name("compiler.py")
_MAX_FDS = 64


def _compile_in_child(request: dict) -> tuple[dict, list[int]]:
    """Run compiler.py in a child process; its JSON reply and the fds it sent."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours:
        try:
            child = subprocess.Popen([sys.executable, str(_COMPILER), str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        message, fds = b"", list[int]()
        try:
            ours.sendall(json.dumps(request).encode())
            message, fds, _flags, _addr = socket.recv_fds(ours, 1 << 16, _MAX_FDS)
        except OSError:
            pass  # the child died: reported below with its exit status
        finally:
            code = child.wait()
    if not message:
        for fd in fds:
            os.close(fd)
        raise CompileError(f"the BPF compiler process ({_COMPILER.name}) ended "
                           f"without an answer (exit status {code})")
    return json.loads(message), fds
