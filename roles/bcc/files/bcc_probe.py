"""Compile and load a tiny TC program with BCC; on failure print one line naming the cause.

Run by the bcc role with the distribution's python3. Exit 0 and "BCC OK ..." on success.
"""

import os
import sys

PROGRAM = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
BPF_ARRAY(seen, u64, 1);
int probe(struct __sk_buff *skb) {
    int key = 0;
    u64 *val = seen.lookup(&key);
    if (val)
        __sync_fetch_and_add(val, 1);
    return TC_ACT_UNSPEC;
}
"""


CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF = 12, 21, 39


def effective_caps() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def fail(cause: str) -> None:
    print(f"BCC probe failed: {cause}")
    sys.exit(1)


def main() -> None:
    release = os.uname().release
    build = f"/lib/modules/{release}/build"
    bpf_markers = ("/sys/fs/bpf", "/proc/sys/kernel/bpf_stats_enabled")
    if not any(os.path.exists(marker) for marker in bpf_markers):
        fail(f"kernel {release} has no BPF support (no /sys/fs/bpf, no kernel.bpf_stats_enabled)")
    caps = effective_caps()
    if not caps & (1 << CAP_SYS_ADMIN | 1 << CAP_BPF) or not caps & (1 << CAP_NET_ADMIN):
        fail("no privileges to load BPF programs: run as root, or with CAP_BPF (or "
             "CAP_SYS_ADMIN) and CAP_NET_ADMIN")
    try:
        from bcc import BPF
    except ImportError as err:
        fail(f"python3-bpfcc is not importable by {sys.executable}: {err}")
    tree = f"/lib/modules/{release}"
    kconfigs = (f"{tree}/{sub}/include/linux/kconfig.h" for sub in ("build", "source"))
    if not any(os.path.exists(path) for path in kconfigs):
        fail(f"no kernel headers for {release}: include/linux/kconfig.h is in neither "
             f"{tree}/build nor {tree}/source (run the kernel_headers role)")
    try:
        bpf = BPF(text=PROGRAM)
    except Exception as err:  # BCC raises bare Exception on compile errors
        fail(f"compiling a TC program with kernel headers at {build} failed: {err}")
    try:
        fn = bpf.load_func("probe", BPF.SCHED_CLS)
    except Exception as err:
        text = str(err)
        if "Operation not permitted" in text or os.geteuid() != 0:
            fail(f"no privileges to load BPF programs (need root or CAP_BPF+CAP_NET_ADMIN): {text}")
        if "Function not implemented" in text or "Invalid argument" in text:
            fail(f"kernel {release} refused the program (BPF or cls_bpf missing): {text}")
        fail(f"loading a TC program failed: {text}")
    print(f"BCC OK: TC program loaded (fd {fn.fd}) on kernel {release}")


if __name__ == "__main__":
    main()
