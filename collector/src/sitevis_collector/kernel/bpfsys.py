"""The bpf(2) system call through ctypes: the few commands the collector runs itself.

The collector never links BCC/LLVM (see compiler.py): maps and programs arrive as file
descriptors, and everything done with them afterwards is one of these commands.
"""

from __future__ import annotations

import ctypes as ct
import os

# The bpf(2) system call's number per architecture (asm/unistd.h); the one table.
SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351,
           "riscv64": 280}

# enum bpf_cmd
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
PROG_GET_FD_BY_ID = 13
OBJ_GET_INFO_BY_FD = 15
PROG_QUERY = 16
MAP_LOOKUP_BATCH = 24
MAP_LOOKUP_AND_DELETE_BATCH = 25
LINK_CREATE = 28
LINK_GET_FD_BY_ID = 30
ENABLE_STATS = 32
LINK_DETACH = 34

# enum bpf_map_type (the ones sitevis.c makes)
MAP_HASH = 1
MAP_ARRAY = 2
MAP_PERCPU_HASH = 5
MAP_PERCPU_ARRAY = 6
MAP_ARRAY_OF_MAPS = 12
MAP_RINGBUF = 27
PERCPU_TYPES = frozenset({MAP_PERCPU_HASH, MAP_PERCPU_ARRAY})

# enum bpf_attach_type: the TCX hooks (kernel >= 6.6)
TCX_INGRESS = 46
TCX_EGRESS = 47
# mprog placement flags (BPF_F_BEFORE with no relative program: first in the chain)
F_BEFORE = 1 << 3

_libc = ct.CDLL(None, use_errno=True)


class BpfError(OSError):
    """A bpf(2) command failed; errno says why."""


def bpf(cmd: int, attr: ct.Structure | ct.Array) -> int:
    """Run one bpf(2) command; the result (>= 0), or -errno."""
    nr = SYS_BPF.get(os.uname().machine)
    if nr is None:
        return -95  # EOPNOTSUPP: no syscall number known for this architecture
    res = _libc.syscall(ct.c_long(nr), ct.c_int(cmd), ct.byref(attr), ct.c_uint(ct.sizeof(attr)))
    return res if res >= 0 else -ct.get_errno()


def check(res: int, what: str) -> int:
    if res < 0:
        raise BpfError(-res, f"{what}: {os.strerror(-res)}")
    return res


class _ElemAttr(ct.Structure):
    _fields_ = [("map_fd", ct.c_uint32), ("pad", ct.c_uint32), ("key", ct.c_uint64),
                ("value", ct.c_uint64), ("flags", ct.c_uint64)]


class _BatchAttr(ct.Structure):
    _fields_ = [("in_batch", ct.c_uint64), ("out_batch", ct.c_uint64), ("keys", ct.c_uint64),
                ("values", ct.c_uint64), ("count", ct.c_uint32), ("map_fd", ct.c_uint32),
                ("elem_flags", ct.c_uint64), ("flags", ct.c_uint64)]


class _InfoAttr(ct.Structure):
    _fields_ = [("bpf_fd", ct.c_uint32), ("info_len", ct.c_uint32), ("info", ct.c_uint64)]


class MapInfo(ct.Structure):
    """The head of struct bpf_map_info (the kernel fills what fits)."""

    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32),
                ("map_flags", ct.c_uint32), ("name", ct.c_char * 16)]


_PROG_INFO_SIZE = 256   # larger than struct bpf_prog_info
_PROG_NAME_OFFSET = 64  # bpf_prog_info.name


def _address(buf) -> int:
    return 0 if buf is None else ct.addressof(buf)


def elem(cmd: int, map_fd: int, key, value=None, flags: int = 0) -> int:
    """lookup / update / delete / get-next-key on one element: result or -errno."""
    attr = _ElemAttr(map_fd=map_fd, key=_address(key), value=_address(value), flags=flags)
    return bpf(cmd, attr)


def batch(cmd: int, map_fd: int, in_batch, out_batch, keys, values,
          count: ct.c_uint32) -> int:
    """MAP_LOOKUP_BATCH / MAP_LOOKUP_AND_DELETE_BATCH; count is in/out. Result or -errno."""
    attr = _BatchAttr(in_batch=_address(in_batch), out_batch=_address(out_batch),
                      keys=_address(keys), values=_address(values), count=count.value,
                      map_fd=map_fd)
    res = bpf(cmd, attr)
    count.value = attr.count  # the kernel reports how many it copied, also on ENOENT
    return res


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ct.sizeof(info), info=ct.addressof(info))
    check(bpf(OBJ_GET_INFO_BY_FD, attr), f"reading map info of fd {fd}")
    return info


def prog_fd_by_id(prog_id: int) -> int | None:
    """A new file descriptor of a loaded BPF program, None if it is gone."""
    fd = bpf(PROG_GET_FD_BY_ID, (ct.c_uint32 * 4)(prog_id))
    return fd if fd >= 0 else None


def prog_name(prog_id: int) -> str | None:
    """The name of a loaded BPF program by id, None if it is gone."""
    fd = prog_fd_by_id(prog_id)
    if fd is None:
        return None
    try:
        info = (ct.c_uint8 * _PROG_INFO_SIZE)()
        info_attr = _InfoAttr(bpf_fd=fd, info_len=_PROG_INFO_SIZE, info=ct.addressof(info))
        if bpf(OBJ_GET_INFO_BY_FD, info_attr) < 0:
            return None
        raw = bytes(info[_PROG_NAME_OFFSET:_PROG_NAME_OFFSET + 16])
        return raw.split(b"\0", 1)[0].decode(errors="replace")
    finally:
        os.close(fd)


def enable_stats_fd() -> int | None:
    """BPF_ENABLE_STATS (run time): on while the returned fd is open; None if refused."""
    attr = (ct.c_uint32 * 2)(0, 0)  # BPF_STATS_RUN_TIME
    fd = bpf(ENABLE_STATS, attr)
    return fd if fd >= 0 else None


class _LinkCreateAttr(ct.Structure):
    """link_create for tcx: prog, ifindex, attach type, flags, relative_fd, revision."""

    _fields_ = [("prog_fd", ct.c_uint32), ("target_ifindex", ct.c_uint32),
                ("attach_type", ct.c_uint32), ("flags", ct.c_uint32),
                ("relative_fd", ct.c_uint32), ("pad", ct.c_uint32),
                ("expected_revision", ct.c_uint64)]


class _QueryAttr(ct.Structure):
    _fields_ = [("target_ifindex", ct.c_uint32), ("attach_type", ct.c_uint32),
                ("query_flags", ct.c_uint32), ("attach_flags", ct.c_uint32),
                ("prog_ids", ct.c_uint64), ("count", ct.c_uint32), ("pad", ct.c_uint32),
                ("prog_attach_flags", ct.c_uint64), ("link_ids", ct.c_uint64),
                ("link_attach_flags", ct.c_uint64), ("revision", ct.c_uint64)]


def tcx_link_create(prog_fd: int, ifindex: int, attach_type: int, flags: int = 0) -> int:
    """A BPF link of prog on an interface's tcx hook (ifindex in the calling thread's
    network namespace): its fd, or -errno."""
    return bpf(LINK_CREATE, _LinkCreateAttr(prog_fd=prog_fd, target_ifindex=ifindex,
                                            attach_type=attach_type, flags=flags))


def tcx_query(ifindex: int, attach_type: int, room: int = 64
              ) -> tuple[list[int], list[int]] | int:
    """(program ids, link ids — 0 where a program was attached without a link) on an
    interface's tcx hook, first to last; or -errno (EINVAL: no tcx in this kernel)."""
    progs, links = (ct.c_uint32 * room)(), (ct.c_uint32 * room)()
    attr = _QueryAttr(target_ifindex=ifindex, attach_type=attach_type,
                      prog_ids=ct.addressof(progs), count=room, link_ids=ct.addressof(links))
    res = bpf(PROG_QUERY, attr)
    if res < 0:
        return res
    n = min(attr.count, room)
    return list(progs[:n]), list(links[:n])


def obj_id(fd: int) -> int:
    """The kernel's id of a BPF program or link (its info starts: type, id, ...)."""
    info = (ct.c_uint32 * 4)()
    attr = _InfoAttr(bpf_fd=fd, info_len=ct.sizeof(info), info=ct.addressof(info))
    check(bpf(OBJ_GET_INFO_BY_FD, attr), f"reading the info of BPF fd {fd}")
    return int(info[1])


link_id = obj_id


def link_detach(fd: int) -> int:
    """Take a link's program off its hook now, whoever else holds the link: 0 or -errno."""
    return bpf(LINK_DETACH, (ct.c_uint32 * 2)(fd))


def link_detach_by_id(link: int) -> int:
    """Detach a BPF link someone else holds (their fd stays valid but defunct)."""
    fd = bpf(LINK_GET_FD_BY_ID, (ct.c_uint32 * 4)(link))
    if fd < 0:
        return fd
    try:
        return link_detach(fd)
    finally:
        os.close(fd)
