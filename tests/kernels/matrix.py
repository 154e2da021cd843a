"""The kernel matrix: which kernels sitevis is tested on, each booted in a VM (QEMU/TCG)
from a Debian root file system, plus the test machine's own kernel, tested without a VM.

This declaration drives the image build (`images.py`), the stage's test
(`test_matrix.py`) and the README's table (`readme.py`). Changing a VM kernel here
changes the recipe hash, so the images are rebuilt."""

from __future__ import annotations

import re
from dataclasses import dataclass

TCX_SINCE = (6, 6)


@dataclass(frozen=True)
class Kernel:
    name: str          # the id in test names, artifacts and SITEVIS_KERNELS
    distribution: str  # what the README says is tested
    suite: str         # root file system (debootstrap suite); "" = this machine, no VM
    source: str        # apt suite of the linux-image-amd64 / linux-headers-amd64 it boots
    series: str        # the prefix uname -r must have, e.g. "6.1." ("" = any)

    @property
    def vm(self) -> bool:
        return bool(self.suite)


MATRIX = (
    Kernel("debian12", "Debian 12 (bookworm), its stock kernel", "bookworm", "bookworm",
           "6.1."),
    Kernel("debian12-bpo", "Debian 12 (bookworm) with the bookworm-backports kernel",
           "bookworm", "bookworm-backports", "6.12."),
    Kernel("debian13", "Debian 13 (trixie), its stock kernel", "trixie", "trixie", "6.12."),
    Kernel("host", "the test machine's own kernel and Python (no VM)", "", "", ""),
)

# Named in the README as expected to work, not tested: no package source for them here.
EXPECTED_ONLY = ("Ubuntu 22.04 (5.15, HWE 6.5/6.8)", "Ubuntu 24.04 (6.8)")

# The root file systems: one per suite, with every kernel of that suite in it.
SUITES = tuple(dict.fromkeys(k.suite for k in MATRIX if k.vm))


def version(release: str) -> tuple[int, int]:
    """(major, minor) of a uname -r string such as 6.1.0-41-amd64."""
    found = re.match(r"(\d+)\.(\d+)", release)
    if not found:
        raise ValueError(f"not a kernel release: {release!r}")
    return int(found[1]), int(found[2])


def expected_hook(release: str) -> str:
    """What tc_attach: auto must choose on this kernel: tcx links from 6.6, else clsact."""
    return "tcx" if version(release) >= TCX_SINCE else "clsact"
