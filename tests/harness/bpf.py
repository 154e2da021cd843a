"""Whether this process can compile and load BPF programs with BCC, and why not."""

from __future__ import annotations

import os
from pathlib import Path


def bcc_unusable_reason() -> str | None:
    """None when BCC can be used here, else a one-line reason to skip."""
    if os.geteuid() != 0:
        return "needs root to load BPF programs and create network namespaces"
    try:
        import bcc  # noqa: F401  (Debian's python3-bpfcc)
    except ImportError:
        return "BCC unavailable: python3-bpfcc not installed (./run test installs it)"
    tree = Path("/lib/modules") / os.uname().release
    kconfig = Path("include/linux/kconfig.h")
    if not any((tree / sub / kconfig).exists() for sub in ("build", "source")):
        return f"BCC unavailable: no kernel headers under {tree} (run the kernel_headers role)"
    return None
