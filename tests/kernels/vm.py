"""Run the matrix scenario (guest.py) on one kernel: in a QEMU/TCG VM booted from the
cached images (images.py), or on this machine for the "host" entry. Returns the
guest's JSON result; the console log and the result go to artifacts/kernels/.

A VM: one vCPU, 2 GiB, no network device (-nic none: the guest's traffic stays between
its own network namespaces), the root image shared read-only by every VM (snapshot=on:
writes go to a throw-away overlay), and a small read-only job disk made for this run
with the collector wheel, the BPF sources and guest.py. The guest writes one line,
"SITEVIS-RESULT <json>", to its second serial port, which QEMU writes to a file."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.kernels import guest
from tests.kernels.images import INIT, image_dir
from tests.kernels.matrix import Kernel

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts/kernels"
VM_TIMEOUT = 1200   # seconds; a VM takes 2-4 min on a busy 2-core machine
QEMU = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "2048",
        "-display", "none", "-monitor", "none", "-no-reboot", "-nic", "none"]


class GuestFailed(Exception):
    """The guest gave no result (boot failure, crash, timeout); the message says why."""


def job_dir(parent: Path, wheel: Path) -> Path:
    """What the guest gets: guest.py, the wheel, bpf/."""
    job = parent / "job"
    job.mkdir()
    shutil.copy(guest.__file__, job / "guest.py")
    shutil.copy(wheel, job / wheel.name)
    shutil.copytree(REPO / "bpf", job / "bpf")
    return job


def _result(text: str, where: Path) -> dict[str, Any]:
    lines = [line for line in text.replace("\r", "").splitlines()
             if line.startswith(guest.MARKER)]
    if not lines:
        raise GuestFailed(f"no result line in {where}")
    result: dict[str, Any] = json.loads(lines[-1][len(guest.MARKER):])
    return result


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


def boot(kernel: Kernel, boots: dict[str, str], wheel: Path) -> dict[str, Any]:
    """The scenario's result in a VM of `kernel` (`boots`: its manifest entry)."""
    images = image_dir()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console = ARTIFACTS / f"{kernel.name}.console.log"
    report = ARTIFACTS / f"{kernel.name}.result"
    with tempfile.TemporaryDirectory(prefix=f"sitevis-vm-{kernel.name}-") as tmp:
        disk = Path(tmp) / "job.img"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(job_dir(Path(tmp), wheel)),
                        str(disk), "64M"], check=True, capture_output=True)
        # No speculation mitigations (nothing here to protect; KPTI's page-table switches
        # are dear under TCG) and no soft-lockup watchdog (a starved TCG vCPU trips it).
        cmdline = (f"root=/dev/vda rw init={INIT} console=ttyS0 quiet panic=-1 "
                   "mitigations=off nowatchdog 8250.nr_uarts=2")
        cmd = [*QEMU, "-kernel", str(images / boots["vmlinuz"]),
               "-initrd", str(images / boots["initrd"]), "-append", cmdline,
               "-drive", f"file={images / boots['image']},if=virtio,format=raw,"
                         "snapshot=on,cache=unsafe",
               "-drive", f"file={disk},if=virtio,format=raw,readonly=on",
               "-serial", f"file:{console}", "-serial", f"file:{report}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=VM_TIMEOUT)
        except subprocess.TimeoutExpired as err:
            raise GuestFailed(f"{kernel.name}: no end within {VM_TIMEOUT} s; console "
                              f"({console}):\n{_tail(console)}") from err
    if proc.returncode != 0:
        raise GuestFailed(f"{kernel.name}: qemu exit {proc.returncode}: {proc.stderr.strip()}")
    try:
        return _result(report.read_text(errors="replace"), report)
    except GuestFailed as err:
        raise GuestFailed(f"{kernel.name}: {err}; console ({console}):\n"
                          f"{_tail(console)}") from None


def native(kernel: Kernel, wheel: Path) -> dict[str, Any]:
    """The scenario on this machine's kernel: the same script, temporary paths, its own
    namespaces (nothing of this machine's interfaces is touched)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = ARTIFACTS / f"{kernel.name}.result"
    log = ARTIFACTS / f"{kernel.name}.console.log"
    with tempfile.TemporaryDirectory(prefix="sitevis-native-") as tmp:
        job = job_dir(Path(tmp), wheel)
        with log.open("w") as out:
            subprocess.run(["/usr/bin/python3", str(job / "guest.py"), "native",
                            str(report)], stdout=out, stderr=subprocess.STDOUT,
                           timeout=VM_TIMEOUT)
    if not report.exists():
        raise GuestFailed(f"{kernel.name}: no result; log ({log}):\n{_tail(log)}")
    return _result(report.read_text(), report)


def run(kernel: Kernel, boots: dict[str, str] | None, wheel: Path) -> dict[str, Any]:
    """The result of one kernel, with the wall time the host spent on it."""
    started = time.monotonic()
    result = boot(kernel, boots, wheel) if boots is not None else native(kernel, wheel)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    (ARTIFACTS / f"{kernel.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
