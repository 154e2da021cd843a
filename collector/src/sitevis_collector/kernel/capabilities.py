"""The capabilities the collector needs and which of them this process lacks: one rule
for `sitevis-collector check` (readiness.py) and for loading the program (kernel.py).

What it needs was measured (collector/packaging/README.md): CAP_BPF (maps, programs),
CAP_PERFMON (the verifier accepts BCC's code only with it), CAP_NET_ADMIN (TC and XDP
hooks). Kernels before 5.8 have no CAP_BPF/CAP_PERFMON; there, and everywhere,
CAP_SYS_ADMIN stands in for both.
"""

from __future__ import annotations

import os
from pathlib import Path

# Capability numbers (linux/capability.h).
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
CAP_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
             CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}
NEEDED_CAPS = (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)
NEEDED_CAPS_PRE_5_8 = (CAP_SYS_ADMIN, CAP_NET_ADMIN)
CAPS_FIX = "run as root, or grant CAP_BPF CAP_PERFMON CAP_NET_ADMIN (the systemd unit does)"


def effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def has(cap: int, caps: int | None = None) -> bool:
    return bool((effective_caps() if caps is None else caps) >> cap & 1)


def _cap_last() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        return CAP_BPF


def missing() -> list[str]:
    """Names of the needed capabilities this process lacks (empty: all there)."""
    caps = effective_caps()
    if _cap_last() >= CAP_BPF:
        return [CAP_NAMES[c] for c in NEEDED_CAPS
                if not has(c, caps) and not (c != CAP_NET_ADMIN and has(CAP_SYS_ADMIN, caps))]
    return [CAP_NAMES[c] for c in NEEDED_CAPS_PRE_5_8 if not has(c, caps)]


def who() -> str:
    return "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"


def lacking_message(lacking: list[str]) -> str:
    return f"{who()} lacks {', '.join(lacking)}: {CAPS_FIX}"
