"""Build the kernel matrix's VM images once: per suite a debootstrapped root file system
(ext4 image) with BCC, the Debian Python packages the collector takes, iproute2, kmod and
every kernel of that suite with its headers; each kernel's vmlinuz and initrd beside it.

The images live in <cache>/<recipe hash>/ (default /var/cache/sitevis/vm); the hash
covers this file and the VM kernels of matrix.py, so a recipe change rebuilds them and a
finished build is reused. Run as root: python3 -m tests.kernels.images [--force]
(scripts/build-vm-images). Needs debootstrap, e2fsprogs (mkfs.ext4 -d) and the Debian
mirror; nothing of the repository goes into the images (the guest gets the collector
and its script on a job disk each run, see vm.py)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.kernels.matrix import MATRIX, SUITES, Kernel

CACHE = Path(os.environ.get("SITEVIS_VM_CACHE", "/var/cache/sitevis/vm"))
MIRROR = os.environ.get("SITEVIS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the roles install on a box (bcc: python3-bpfcc, python3-pyroute2; collector:
# python3-venv, -yaml, -rich), the tools the guest script uses, and the initrd builder.
PACKAGES = ("python3-venv", "python3-yaml", "python3-rich", "python3-pyroute2",
            "python3-bpfcc", "iproute2", "kmod", "initramfs-tools", "zstd")
# The initrd needs only what mounts the root: virtio disks and ext4.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")
INIT = "/usr/local/sbin/sitevis-vm-init"
INIT_SCRIPT = """#!/bin/sh
# PID 1 of a sitevis test VM: mount what the guest needs, run the guest script from the
# job disk (/dev/vdb), power off. The script reports on the second serial port.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mountpoint -q /run || mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf
mkdir -p /job && mount -o ro /dev/vdb /job && python3 /job/guest.py vm
echo o >/proc/sysrq-trigger
sleep 60
"""
# The collector role's "Create the venv" task (a venv made once per box, kept across
# rollouts), done here: ensurepip under TCG takes a minute. The wheel is installed into
# it at every run, as the role's "Install the wheel into the venv" task does.
VENV = "/opt/sitevis-collector/venv"
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "var/cache/apt", "var/lib/apt/lists")


def recipe_hash() -> str:
    """Of this file and the VM kernels declared: what the images are made from."""
    recipe = Path(__file__).read_bytes() + repr([k for k in MATRIX if k.vm]).encode()
    return hashlib.sha256(recipe).hexdigest()[:16]


def image_dir() -> Path:
    return CACHE / recipe_hash()


def manifest() -> dict | None:
    """The finished build of the current recipe ({"kernels": {name: {...}}}), or None."""
    path = image_dir() / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive",
                                   "LC_ALL": "C.UTF-8"})
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed (exit {proc.returncode}); "
                           f"last lines of {log}:\n{tail}")


def _unmount_under(root: Path) -> None:
    """Whatever is mounted below root (an interrupted build leaves proc, sys, dev)."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def _clear(root: Path) -> None:
    if root.exists():
        _unmount_under(root)
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)


@contextlib.contextmanager
def _mounted(root: Path) -> Iterator[None]:
    """proc, sys and dev inside the root while packages are installed (initramfs-tools
    and kernel postinst scripts look at them)."""
    try:
        for kind, target in (("proc", "proc"), ("sysfs", "sys")):
            subprocess.run(["mount", "-t", kind, kind, str(root / target)], check=True)
        for target in ("dev", "dev/pts"):
            subprocess.run(["mount", "--bind", f"/{target}", str(root / target)], check=True)
        yield
    finally:
        _unmount_under(root)


def _releases(root: Path) -> set[str]:
    modules = root / "lib/modules"
    return {p.name for p in modules.iterdir()} if modules.is_dir() else set()


def build_suite(suite: str, kernels: list[Kernel], out: Path) -> dict[str, dict[str, str]]:
    """<out>/<suite>.img and per kernel its vmlinuz/initrd; {kernel name: what it boots}."""
    root = out / f"{suite}.root"
    log = out / f"{suite}.log"
    _clear(root)
    root.mkdir(parents=True)
    _run(["debootstrap", "--variant=minbase", "--include=ca-certificates", suite,
          str(root), MIRROR], log)
    sources = dict.fromkeys([suite, *(k.source for k in kernels)])
    (root / "etc/apt/sources.list").write_text(
        "".join(f"deb {MIRROR} {source} main\n" for source in sources))
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")  # start nothing
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    initramfs = root / "etc/initramfs-tools"
    initramfs.mkdir(parents=True, exist_ok=True)
    chroot = ["chroot", str(root)]
    apt = [*chroot, "apt-get", "-y", "-q", "--no-install-recommends", "install"]
    booted: dict[str, dict[str, str]] = {}
    with _mounted(root):
        _run([*chroot, "apt-get", "-q", "update"], log)
        _run([*apt, *PACKAGES], log)
        (initramfs / "conf.d").mkdir(exist_ok=True)
        (initramfs / "conf.d/sitevis").write_text("MODULES=list\n")
        (initramfs / "modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
        for kernel in kernels:  # the suite's own kernel first: -t only picks the source
            before = _releases(root)
            _run([*apt, "-t", kernel.source, "linux-image-amd64", "linux-headers-amd64"], log)
            (release,) = _releases(root) - before
            if not release.startswith(kernel.series):
                raise RuntimeError(f"{kernel.name}: {kernel.source} installed {release}, "
                                   f"the matrix declares {kernel.series}*")
            for part in ("vmlinuz", "initrd.img"):
                shutil.copyfile(root / f"boot/{part}-{release}", out / f"{part}-{release}")
            booted[kernel.name] = {"release": release, "image": f"{suite}.img",
                                   "vmlinuz": f"vmlinuz-{release}",
                                   "initrd": f"initrd.img-{release}"}
        _run([*chroot, "/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV], log)
    for path in ("boot", *TRIM):
        shutil.rmtree(root / path, ignore_errors=True)
        (root / path).mkdir(parents=True, exist_ok=True)
    (root / INIT.lstrip("/")).write_text(INIT_SCRIPT)
    (root / INIT.lstrip("/")).chmod(0o755)
    used = int(subprocess.run(["du", "-sxm", str(root)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    size = used + used // 4 + 768  # room for the venv, the collector and logs
    _run(["mkfs.ext4", "-q", "-F", "-L", "sitevis", "-d", str(root),
          str(out / f"{suite}.img"), f"{size}M"], log)
    _clear(root)
    return booted


def build(force: bool = False) -> dict:
    """The current recipe's images, built unless a finished build exists; returns the
    manifest. Builds of different suites run side by side; a lock keeps two builds
    from racing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = manifest()
        if found and not force:
            print(f"build-vm-images: {image_dir()} present, reused")
            return found
        for tool in ("debootstrap", "mkfs.ext4"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} not found (apt-get install debootstrap e2fsprogs)")
        started = time.monotonic()
        final = image_dir()
        work = final.with_name(final.name + ".build")
        _clear(work)
        work.mkdir(parents=True)
        print(f"build-vm-images: building {', '.join(SUITES)} into {work} "
              "(a few minutes; logs there)", flush=True)
        with ThreadPoolExecutor(max_workers=len(SUITES)) as pool:
            jobs = [pool.submit(build_suite, suite, [k for k in MATRIX if k.suite == suite],
                                work) for suite in SUITES]
            kernels = {name: boot for job in jobs for name, boot in job.result().items()}
        seconds = round(time.monotonic() - started)
        found = {"recipe": recipe_hash(), "seconds": seconds, "kernels": kernels}
        (work / "manifest.json").write_text(json.dumps(found, indent=2) + "\n")
        _clear(final)
        work.rename(final)
        for old in CACHE.iterdir():  # earlier recipes' images
            if old.is_dir() and old != final:
                _clear(old)
        print(f"build-vm-images: built in {seconds} s: " + ", ".join(
            f"{name} {boot['release']}" for name, boot in kernels.items()))
        return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    parser.add_argument("--print-dir", action="store_true",
                        help="print the current recipe's image directory and exit")
    args = parser.parse_args()
    if args.print_dir:
        print(image_dir())
        return 0
    try:
        build(force=args.force)
    except RuntimeError as err:
        print(f"build-vm-images: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
