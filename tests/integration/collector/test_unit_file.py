"""The hardened systemd unit: systemd accepts it, and BCC works inside its sandbox.

systemd is not PID 1 on the test machines, so the unit's sandbox is reproduced with the
same kernel mechanisms systemd uses: the capability bounding set (setpriv), NoNewPrivs,
and the system call filter with MemoryDenyWriteExecute (libseccomp, unit_sandbox.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sitevis_collector.hooks.tcx import tcx_available

REPO = Path(__file__).resolve().parents[3]
UNIT = REPO / "collector" / "packaging" / "sitevis-collector.service"
SANDBOX = Path(__file__).with_name("unit_sandbox.py")
EXEC_START = "/opt/sitevis-collector/venv/bin/sitevis-collector"

# Compile + load a SCHED_CLS program with a hash map and a ring buffer, add clsact and a
# cls_bpf filter on both hooks and remove them, link it on both tcx hooks (where the
# kernel has them) and drop the links, read kernel.bpf_stats_enabled.
PROBE = """
import sys
from pyroute2 import IPRoute
from sitevis_collector.commands.readiness import BPF_STATS, attach_probe, load_probe
try:
    bpf, fd = load_probe()
    with IPRoute() as ipr:
        tcx = attach_probe(ipr, ipr.link_lookup(ifname=sys.argv[1])[0], fd)
    print("stats", BPF_STATS.read_text().strip())
    print("tcx", tcx)
except Exception as err:
    print("failed:", str(err).strip().splitlines()[0])
    sys.exit(1)
print("attached")
"""


def directives(name: str) -> list[str]:
    """The values of every `name=` line of the [Service] section, in order."""
    values, section = [], ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line.startswith(f"{name}="):
            values.append(line.split("=", 1)[1])
    return values


def unit_caps() -> list[str]:
    (caps,) = directives("CapabilityBoundingSet")
    return caps.split()


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify in a scratch root holding the unit and its ExecStart."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: install Debian's systemd package"
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / UNIT.name).write_text(unit_text)
    binary = root / EXEC_START.lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    # The targets it orders against come from this machine's systemd.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return subprocess.run([analyze, "verify", f"--root={root}", "--man=no",
                           f"/etc/systemd/system/{UNIT.name}"],
                          capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("mutation", [
    ("ProtectSystem=strict", "ProtectSystem=sometimes"),
    ("@system-service bpf", "@system-service bpff"),
    ("MemoryMax=512M", "MemoryMax=512Q"),
    ("Restart=on-failure", "Restart=on-failure\nRestartPlease=yes"),
])
def test_verify_would_catch_a_broken_unit(tmp_path: Path, mutation: tuple[str, str]) -> None:
    # Proves the check above can fail: small mistakes are reported (verify only warns
    # and still exits 0 for most, hence "no output at all" above). It does not know
    # capability names; setpriv, given the unit's set below, rejects unknown ones.
    old, new = mutation
    assert old in UNIT.read_text()
    result = verify(UNIT.read_text().replace(old, new, 1), tmp_path)
    assert result.returncode != 0 or result.stdout + result.stderr != ""


def test_unit_runs_the_rollout_paths_and_keeps_its_promises() -> None:
    assert directives("ExecStart") == [f"{EXEC_START} run -c /etc/sitevis/collector.yml"]
    assert directives("StateDirectory") == ["sitevis-collector"]
    assert directives("ReadWritePaths") == ["/var/lib/sitevis-collector"]
    assert directives("KillSignal") == ["SIGTERM"] and directives("Restart") == ["on-failure"]
    assert directives("AmbientCapabilities") == directives("CapabilityBoundingSet")
    # /usr/lib/modules holds the kernel headers BCC compiles against: never hide it.
    assert directives("ProtectKernelModules") == ["no"]
    assert "AF_PACKET" not in directives("RestrictAddressFamilies")[0]


def run_probe(ns_host, caps: list[str], allow: str | None = None,
              mdwe: bool = True) -> subprocess.CompletedProcess[str]:
    """PROBE on the host's interface as root limited to caps (and the syscall filter)."""
    bounding = ",".join(["-all", *(f"+{c.removeprefix('CAP_').lower()}" for c in caps)])
    cmd = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--no-new-privs"]
    if allow is not None:
        cmd += [sys.executable, str(SANDBOX), *(["--mdwe"] if mdwe else []), allow, "--"]
    cmd += [sys.executable, "-c", PROBE, ns_host.ifname]
    return ns_host.exec(*cmd, check=False, timeout=120)


@pytest.fixture
def sandboxed(bcc_ready, host_pair):
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv missing: install Debian's util-linux")
    return host_pair.left


def test_bcc_works_with_exactly_the_units_capabilities_and_syscalls(sandboxed) -> None:
    (allow,) = directives("SystemCallFilter")
    assert directives("MemoryDenyWriteExecute") == ["yes"]
    result = run_probe(sandboxed, unit_caps(), allow, mdwe=True)
    assert result.returncode == 0, result.stdout + result.stderr
    stats, tcx, attached = result.stdout.splitlines()[-3:]
    assert stats in ("stats 0", "stats 1") and attached == "attached"
    assert tcx == f"tcx {tcx_available()}"  # tcx links, too, need nothing more
    # Nothing of ours is left on the interface.
    assert "clsact" not in sandboxed.exec("tc", "qdisc", "show", "dev", sandboxed.ifname).stdout


@pytest.mark.parametrize("dropped", ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"])
def test_one_capability_less_fails(sandboxed, dropped: str) -> None:
    caps = [c for c in unit_caps() if c != dropped]
    assert len(caps) == len(unit_caps()) - 1
    result = run_probe(sandboxed, caps)
    assert result.returncode == 1 and "failed:" in result.stdout, result.stdout + result.stderr


def test_the_syscall_filter_is_real_without_bpf_it_fails(sandboxed) -> None:
    (allow,) = directives("SystemCallFilter")
    result = run_probe(sandboxed, unit_caps(), allow.replace(" bpf", ""))
    assert result.returncode == 1 and "failed:" in result.stdout, result.stdout + result.stderr


def test_mdwe_emulation_is_real(sandboxed) -> None:
    # The same rules refuse an executable mapping made from writable memory.
    code = ("import ctypes, mmap; m = mmap.mmap(-1, 4096); "
            "libc = ctypes.CDLL(None, use_errno=True); "
            "addr = ctypes.addressof(ctypes.c_char.from_buffer(m)); "
            "print(libc.mprotect(ctypes.c_void_p(addr), 4096, 5), ctypes.get_errno())")
    sandboxed_run = subprocess.run(
        ["setpriv", "--no-new-privs", sys.executable, str(SANDBOX), "--mdwe",
         "@system-service", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60)
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert plain.stdout.split() == ["0", "0"]
    assert sandboxed_run.stdout.split() == ["-1", "1"], sandboxed_run.stderr  # EPERM


def test_writing_bpf_stats_needs_cap_sys_admin_which_the_unit_lacks(sandboxed) -> None:
    # Documented trade-off: the ns/packet self-metric needs the sysctl enabled by root.
    # Writes back the value it read: other users of the sysctl are not disturbed.
    code = ("import pathlib\np = pathlib.Path('/proc/sys/kernel/bpf_stats_enabled')\n"
            "try:\n p.write_text(p.read_text())\n print('written')\n"
            "except PermissionError:\n print('denied')")
    assert "CAP_SYS_ADMIN" not in unit_caps()
    for caps, expected in ((unit_caps(), "denied"), ([*unit_caps(), "CAP_SYS_ADMIN"],
                                                      "written")):
        bounding = ",".join(["-all", *(f"+{c.removeprefix('CAP_').lower()}" for c in caps)])
        out = sandboxed.exec("setpriv", f"--bounding-set={bounding}", "--inh-caps=-all",
                             sys.executable, "-c", code).stdout.strip()
        assert out == expected, caps
