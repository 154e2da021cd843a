"""Apply a systemd unit's system call sandbox with libseccomp, then exec a command.

    unit_sandbox.py [--mdwe] "<SystemCallFilter allow list>" -- COMMAND...

Mirrors systemd's semantics for what the unit uses: an allow list of calls and
@groups (expanded by `systemd-analyze syscall-filter`, with @default implied), every
other call failing with EPERM (SystemCallErrorNumber=EPERM), and --mdwe adding
MemoryDenyWriteExecute's rules (no W+X mmap, no PROT_EXEC via mprotect). Run it with
no_new_privs set (setpriv --no-new-privs), as systemd does for NoNewPrivileges=yes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import subprocess

import seccomp  # Debian python3-seccomp

PROT_WRITE, PROT_EXEC = 0x2, 0x4
_MDWE_CALLS = {"mmap", "mprotect", "pkey_mprotect"}


def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                         capture_output=True, text=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        item = line.strip()
        if line.startswith("@"):
            current = groups.setdefault(item, [])
        elif item and not item.startswith("#") and current is not None:
            current.append(item)
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    calls: set[str] = set()
    for name in names:
        calls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


def build(allow: list[str], mdwe: bool) -> seccomp.SyscallFilter:
    calls = expand([*allow, "@default"], syscall_groups())
    filt = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    for name in sorted(calls - (_MDWE_CALLS if mdwe else set())):
        # Skips names this architecture lacks (32-bit variants and the like).
        with contextlib.suppress(RuntimeError, ValueError):
            filt.add_rule(seccomp.ALLOW, name)
    if mdwe:
        wx = PROT_WRITE | PROT_EXEC
        for prot in (0, PROT_WRITE, PROT_EXEC):  # never both at once
            filt.add_rule(seccomp.ALLOW, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, prot))
        for name in ("mprotect", "pkey_mprotect"):
            filt.add_rule(seccomp.ALLOW, name,
                          seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
    return filt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mdwe", action="store_true")
    parser.add_argument("allow")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    build(args.allow.split(), args.mdwe).load()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
