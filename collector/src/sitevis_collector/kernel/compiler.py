"""Compile and load bpf/sitevis.c with BCC in a separate process; hand back the fds.

BCC compiles with an in-process LLVM: importing it and compiling costs ~140 MB of RSS
that the collector would otherwise keep (or at least peak at) for its whole life. So
the collector runs this file as a child process (python3 compiler.py FD), sends the
request over the unix (seqpacket) socket FD as JSON, and receives one JSON reply plus the program
and map file descriptors (SCM_RIGHTS). The kernel objects outlive this process: the
collector's copies of the descriptors hold them.

Self-contained on purpose (standard library + bcc): nothing of the collector is
imported, so this process stays as small as BCC allows and never sees its config.
"""

from __future__ import annotations

import json
import socket
import sys

_MAX_REQUEST = 1 << 20


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def compile_and_load(request: dict) -> tuple[dict, list[int], object]:
    """(reply, fds, bpf object kept alive until the fds are sent)."""
    try:
        from bcc import BPF
    except ImportError:
        return {"error": "unsupported",
                "message": "BCC is not installed (Debian package python3-bpfcc)"}, [], None
    try:
        bpf = BPF(src_file=request["source"].encode(), cflags=request["cflags"])
    except Exception as exc:  # BCC raises bare Exception; clang's output went to stderr
        return {"error": "compile", "message": _first_line(exc)}, [], None
    kind = BPF.XDP if request["kind"] == "xdp" else BPF.SCHED_CLS
    fds: list[int] = []
    try:
        for name in request["functions"]:
            fds.append(bpf.load_func(name.encode(), kind).fd)
    except Exception as exc:
        return {"error": "load", "message": _first_line(exc)}, [], bpf
    maps, layouts = [], {}
    for name in request["maps"]:
        try:
            table = bpf.get_table(name)
        except KeyError:
            continue  # an older source without this map: the collector copes
        fds.append(table.map_fd)
        maps.append(name)
        if hasattr(table, "Key") and hasattr(table, "Leaf"):
            leaf = table.Leaf
            if hasattr(leaf, "_length_"):  # a per-CPU map: BCC's value is one per CPU
                leaf = leaf._type_
            layouts[name] = {"key": describe(table.Key), "leaf": describe(leaf)}
    return {"functions": request["functions"], "maps": maps, "layouts": layouts}, fds, bpf


def describe(ctype, prefix: str = "", base: int = 0) -> list:
    """[[field, offset, size], ...] of a ctypes type, nested structs flattened as a.b:
    BCC's types here, the collector's mirror in layout.py (the one definition, so both
    sides are described alike; this file imports nothing of the collector)."""
    import ctypes

    fields = getattr(ctype, "_fields_", None)
    if not fields:
        return [[prefix, base, ctypes.sizeof(ctype)]]
    out = []
    for name, ftype, *_ in fields:
        desc = getattr(ctype, name)
        if getattr(ftype, "_fields_", None):
            out += describe(ftype, f"{prefix}{name}.", base + desc.offset)
        else:
            out.append([f"{prefix}{name}", base + desc.offset, desc.size])
    return out


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    request = json.loads(sock.recv(_MAX_REQUEST))
    reply, fds, _bpf = compile_and_load(request)
    socket.send_fds(sock, [json.dumps(reply).encode()], fds)
    sock.close()
    return 0 if "error" not in reply else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
