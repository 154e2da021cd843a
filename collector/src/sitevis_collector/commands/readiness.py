"""Kernel and environment readiness checks behind `sitevis-collector check`.

Each check returns a CheckResult whose detail is one line: what was verified, or the
cause and the fix. Nothing here raises for a problem a user can cause.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import http.client
import os
import ssl
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sitevis_collector.kernel import bpfsys, capabilities
from sitevis_collector.kernel.capabilities import CAP_NAMES, CAP_SYS_ADMIN, CAPS_FIX

OK, FAIL, SKIP = "ok", "fail", "skip"

BPF_STATS = Path("/proc/sys/kernel/bpf_stats_enabled")

# A miniature of the collector's program: hash map, ring buffer, packet loads, and a
# key with padding the code never writes (clang leaves it uninitialised even after
# `= {}` in places), which the verifier accepts only with CAP_PERFMON, as BCC code needs.
PROBE_PROGRAM = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
struct probe_key { u32 ifindex; u8 dir; u16 proto; u32 src; };
struct probe_rec { u32 ifindex; u32 len; u8 head[32]; };
BPF_HASH(probe_flows, struct probe_key, u64, 64);
BPF_RINGBUF_OUTPUT(probe_samples, 1);
int sitevis_probe(struct __sk_buff *skb) {
    struct probe_key key;
    struct iphdr ip;
    u64 one = 1, *count;
    key.ifindex = skb->ifindex;
    key.dir = 1;
    key.proto = skb->protocol;
    key.src = 0;
    if (skb->protocol == htons(ETH_P_IP) &&
        bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) == 0)
        key.src = ip.saddr;
    count = probe_flows.lookup(&key);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        probe_flows.update(&key, &one);
    struct probe_rec *rec = probe_samples.ringbuf_reserve(sizeof(*rec));
    if (rec) {
        rec->ifindex = skb->ifindex;
        rec->len = skb->len;
        if (bpf_skb_load_bytes(skb, 0, rec->head, sizeof(rec->head)) < 0)
            __builtin_memset(rec->head, 0, sizeof(rec->head));
        probe_samples.ringbuf_submit(rec, 0);
    }
    return TC_ACT_UNSPEC;
}
"""
PROBE_FUNCTION = "sitevis_probe"
# Our own priority/handle, unlike the collector's, so a check never touches its filters.
PROBE_PRIO, PROBE_HANDLE = 49152, 0x5150


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # OK | FAIL | SKIP
    detail: str  # one line

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self) -> str:
        return f"{self.status.upper():4}  {self.name}: {self.detail}"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


# -- privileges ----------------------------------------------------------------

def check_privileges() -> CheckResult:
    name = "privileges"
    lacking = capabilities.missing()
    if lacking:
        return CheckResult(name, FAIL, capabilities.lacking_message(lacking))
    caps = capabilities.effective_caps()
    held = " ".join(n for c, n in sorted(CAP_NAMES.items()) if capabilities.has(c, caps))
    return CheckResult(name, OK, f"{capabilities.who()} with {held}")


# -- bpf() syscall ---------------------------------------------------------------

def check_bpf_syscall() -> CheckResult:
    name = "bpf syscall"
    if not BPF_STATS.exists():
        return CheckResult(name, FAIL, f"kernel {os.uname().release} has no BPF syscall "
                           f"({BPF_STATS} missing): use a kernel built with CONFIG_BPF_SYSCALL")
    number = bpfsys.SYS_BPF.get(os.uname().machine)
    if number is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        # An unknown command: EINVAL (or EPERM) proves the syscall exists, ENOSYS not.
        libc.syscall(number, 0x7FFF, None, 0)
        if ctypes.get_errno() == errno.ENOSYS:
            return CheckResult(name, FAIL, "bpf() returns ENOSYS: the kernel or a seccomp "
                               "filter blocks it (allow bpf in the container/service)")
    return CheckResult(name, OK, f"available; kernel.bpf_stats_enabled={_read_stats()}")


def _read_stats() -> str:
    try:
        return BPF_STATS.read_text().strip()
    except OSError as err:
        return f"unreadable ({err.strerror})"


# -- kernel headers --------------------------------------------------------------

MODULES = Path("/lib/modules")


def header_dirs(release: str | None = None, modules: Path = MODULES) -> list[Path]:
    tree = modules / (release or os.uname().release)
    return [tree / "build", tree / "source"]


def check_kernel_headers(release: str | None = None, modules: Path = MODULES) -> CheckResult:
    name = "kernel headers"
    release = release or os.uname().release
    dirs = header_dirs(release, modules)
    denied: list[str] = []
    # BCC needs include/linux/kconfig.h; on Debian it lives in the -common tree (source).
    for directory in dirs:
        try:
            (directory / "include/linux/kconfig.h").stat()
        except PermissionError:
            denied.append(str(directory))
            continue
        except OSError:
            continue
        return CheckResult(name, OK, f"{directory} (include/linux/kconfig.h)")
    if denied:
        # Typically systemd's ProtectKernelModules=yes, which hides /usr/lib/modules.
        return CheckResult(name, FAIL, f"kernel headers under {' and '.join(denied)} are not "
                           "readable (permission denied): allow /usr/lib/modules, e.g. "
                           "ProtectKernelModules=no in the service")
    return CheckResult(name, FAIL, f"no kernel headers for {release}: include/linux/kconfig.h "
                       f"is in neither {dirs[0]} nor {dirs[1]}; install "
                       f"linux-headers-{release} or run the kernel_headers role")


# -- BCC -------------------------------------------------------------------------

def check_bcc_importable() -> CheckResult:
    name = "BCC"
    try:
        import bcc
    except Exception as err:  # ImportError, or OSError when libbcc.so is missing
        return CheckResult(name, FAIL, f"python3-bpfcc is not importable by {sys.executable} "
                           f"({_first_line(str(err))}): install python3-bpfcc and build the "
                           "venv with --system-site-packages")
    return CheckResult(name, OK, f"importable from {Path(bcc.__file__).parent}")


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Callable[[], str]]:
    """Capture fd 2: BCC's compiler and verifier write there, not to exceptions."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode(errors="replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _load_failure(what: str, err: Exception, stderr: str) -> str:
    text = f"{err}\n{stderr}"
    if "Operation not permitted" in text or "super-user" in text:
        return f"{what}: not permitted: {CAPS_FIX}"
    if "Permission denied" in text or ("invalid" in text.lower() and "stack" in text):
        return (f"{what}: the verifier refused it ({_verifier_reason(stderr)}); "
                f"without CAP_PERFMON it is stricter: {CAPS_FIX}")
    if "kconfig.h" in text or "No such file" in text:
        return (f"{what}: kernel headers unusable ({_first_line(stderr)}): "
                "run the kernel_headers role")
    return f"{what}: {_first_line(str(err))} ({_first_line(stderr)})"


def _verifier_reason(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "processed" not in line and not line.startswith(("R", ";", "-", "from")):
            return line.strip()
    return lines[-1].strip() if lines else "no verifier log"


def load_probe() -> tuple[Any, int]:
    """Compile and load PROBE_PROGRAM as SCHED_CLS; (BPF object, program fd). Raises."""
    from bcc import BPF

    bpf = BPF(text=PROBE_PROGRAM.encode())
    try:
        fn = bpf.load_func(PROBE_FUNCTION.encode(), BPF.SCHED_CLS)
    except BaseException:
        bpf.cleanup()
        raise
    return bpf, fn.fd


def check_program_load() -> CheckResult:
    name = "BPF program load"
    with _captured_stderr() as stderr:
        try:
            bpf, fd = load_probe()
        except Exception as err:
            return CheckResult(name, FAIL, _load_failure("compiling and loading a TC program",
                                                          err, stderr()))
    bpf.cleanup()
    return CheckResult(name, OK, f"SCHED_CLS program with hash map and ring buffer loaded "
                       f"(fd {fd})")


# -- TC clsact + cls_bpf ----------------------------------------------------------

def attach_probe(ipr: Any, ifindex: int, fd: int, netns: str | None = None) -> bool:
    """Add clsact (if absent) and our filter on both hooks, then remove what we added;
    then link the program on both tcx hooks and drop the links. False: no tcx here."""
    from pyroute2.netlink.exceptions import NetlinkError

    created = False
    try:
        ipr.tc("add", "clsact", ifindex)
        created = True
    except NetlinkError as err:
        if err.code != errno.EEXIST:  # someone else's clsact: reuse it
            raise
    try:
        for parent in ("ffff:fff2", "ffff:fff3"):
            ipr.tc("add-filter", "bpf", ifindex, PROBE_HANDLE, fd=fd, name="sitevis-check",
                   parent=parent, prio=PROBE_PRIO, classid=1, direct_action=True)
            ipr.tc("del-filter", "bpf", ifindex, PROBE_HANDLE, parent=parent, prio=PROBE_PRIO)
    finally:
        if created:
            ipr.tc("del", "clsact", ifindex)
    return _tcx_probe(ifindex, fd, netns)


def _tcx_probe(ifindex: int, fd: int, netns: str | None) -> bool:
    from sitevis_collector.hooks.tcx import ATTACH_TYPES, link, tcx_available

    if not tcx_available(netns):
        return False
    for direction in ATTACH_TYPES:
        os.close(link(fd, ifindex, direction, netns))
    return True


def _netns_allowed() -> bool:
    return bool(capabilities.has(CAP_SYS_ADMIN))


def check_tc_attach(ifname: str | None = None) -> CheckResult:
    """clsact + cls_bpf on a throw-away veth in a temporary netns (or on ifname, here)."""
    name = "TC clsact/cls_bpf"
    if ifname is None and not _netns_allowed():
        return CheckResult(name, SKIP, "not verified: a throw-away network namespace needs "
                           "CAP_SYS_ADMIN, which the collector does not need (loading "
                           "was checked)")
    with _captured_stderr() as stderr:
        try:
            bpf, fd = load_probe()
        except Exception as err:
            return CheckResult(name, FAIL, _load_failure("loading the TC test program",
                                                          err, stderr()))
    try:
        where, tcx = _attach_somewhere(ifname, fd)
    except _NoScratchNamespace as err:
        return CheckResult(name, SKIP, f"not verified: no throw-away network namespace ({err}); "
                           "loading was checked")
    except Exception as err:
        return CheckResult(name, FAIL, _tc_failure(err))
    finally:
        bpf.cleanup()
    done = ("clsact + cls_bpf filter and tcx links" if tcx else
            "clsact + cls_bpf filter (no tcx in this kernel: clsact is used)")
    return CheckResult(name, OK, f"{done} added and removed on {where}")


class _NoScratchNamespace(Exception):
    """Creating the temporary namespace was refused (e.g. systemd RestrictNamespaces=)."""


def _attach_somewhere(ifname: str | None, fd: int) -> tuple[str, bool]:
    from pyroute2 import IPRoute, NetNS, netns

    if ifname is not None:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                raise LookupError(f"no interface {ifname}")
            tcx = attach_probe(ipr, found[0], fd)
        return ifname, tcx
    ns_name = f"sitevis-check-{os.getpid()}"
    try:
        ns = NetNS(ns_name)  # creates it
    except Exception as err:
        with contextlib.suppress(Exception):
            netns.remove(ns_name)
        raise _NoScratchNamespace(_first_line(str(err)) or type(err).__name__) from err
    try:
        ns.link("add", ifname="svcheck0", kind="veth", peer="svcheck1")
        index = ns.link_lookup(ifname="svcheck0")[0]
        ns.link("set", index=index, state="up")
        tcx = attach_probe(ns, index, fd, ns_name)
    finally:
        ns.close()
        netns.remove(ns_name)
    return "a veth in a temporary network namespace", tcx


def _tc_failure(err: Exception) -> str:
    code = getattr(err, "code", None) or getattr(err, "errno", None)
    if code in (errno.EPERM, errno.EACCES):
        return f"changing TC hooks not permitted: {CAPS_FIX}"
    if code in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
        return (f"the kernel refused clsact or cls_bpf ({os.strerror(code)}): it needs "
                "CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF")
    return f"TC attach failed: {_first_line(str(err)) or type(err).__name__}"


# -- InfluxDB --------------------------------------------------------------------

def check_influxdb(url: str, timeout: float = 3.0,
                   context: ssl.SSLContext | None = None) -> CheckResult:
    """GET <url>/ping must answer 204. Direct connection, like delivery (no proxy)."""
    name = "InfluxDB"
    ping = url.rstrip("/") + "/ping"
    fix = "start InfluxDB or fix influxdb.url in the config"
    try:
        parts = urllib.parse.urlsplit(ping)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return CheckResult(name, FAIL, f"{url!r} is not an http(s)://host[:port] URL: "
                               "fix influxdb.url in the config")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("GET", parts.path)
            status = conn.getresponse().status
        finally:
            conn.close()
    except TimeoutError:
        return CheckResult(name, FAIL, f"{ping} unreachable (no answer within {timeout:g}s): "
                           f"{fix}")
    except (OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "strerror", None) or _first_line(str(err)) or type(err).__name__
        return CheckResult(name, FAIL, f"{ping} unreachable ({reason}): {fix}")
    if status != 204:
        return CheckResult(name, FAIL, f"{ping} answered HTTP {status}, not 204: is this "
                           "InfluxDB? fix influxdb.url in the config")
    return CheckResult(name, OK, f"{ping} answered 204")


# -- all -------------------------------------------------------------------------

def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """A check that breaks unexpectedly still yields one line, never a traceback."""
    try:
        return check()
    except Exception as err:
        return CheckResult(name, FAIL, f"check failed unexpectedly: {type(err).__name__}: "
                           f"{_first_line(str(err))}")


def run_all(influxdb_url: str | None = None, timeout: float = 3.0) -> list[CheckResult]:
    """Every check, in dependency order; a check whose prerequisite failed is skipped."""
    results = [_guarded("privileges", check_privileges)]
    # Loading is tried even without privileges: its own error says what the kernel did.
    prerequisites = [_guarded("bpf syscall", check_bpf_syscall),
                     _guarded("kernel headers", check_kernel_headers),
                     _guarded("BCC", check_bcc_importable)]
    results += prerequisites
    if all(r.ok for r in prerequisites):
        load = _guarded("BPF program load", check_program_load)
        results.append(load)
        results.append(_guarded("TC clsact/cls_bpf", check_tc_attach) if load.ok else
                       CheckResult("TC clsact/cls_bpf", SKIP, "not tried: loading failed"))
    else:
        why = ", ".join(r.name for r in prerequisites if not r.ok)
        results.append(CheckResult("BPF program load", SKIP, f"not tried: {why} failed"))
    if influxdb_url is not None:
        results.append(_guarded("InfluxDB", lambda: check_influxdb(influxdb_url, timeout)))
    return results
