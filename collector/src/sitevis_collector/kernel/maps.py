"""A BPF map held by file descriptor, read and written with typed (ctypes) keys and values.

Key and value types mirror the C structs of bpf/sitevis.c (structs.py); the sizes the
kernel reports for the map are checked against them when the map is opened, so a BPF
source and a collector of different versions fail with a clear message, not garbage.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sitevis_collector.kernel import bpfsys


def possible_cpus() -> int:
    """Number of possible CPUs (per-CPU maps have one slot for each), e.g. "0-3,8-11"."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


class MapLayoutError(Exception):
    """The map in the kernel does not have the layout the collector expects."""


def _percpu_leaf(value_type: Any, ncpus: int) -> Any:
    """The kernel copies a per-CPU value as ncpus slots of value_size rounded up to 8."""
    size = ct.sizeof(value_type)
    if size % 8:
        value_type = type(f"{value_type.__name__}8", (ct.Structure,),
                          {"_fields_": [("v", value_type), ("pad", ct.c_uint8 * (8 - size % 8))]})
    return value_type * ncpus


class BpfMap:
    """One map: Key and Leaf are its ctypes types (Leaf is an array of per-CPU values
    for a per-CPU map). Owns its file descriptor."""

    def __init__(self, fd: int, name: str, key_type: type, value_type: type) -> None:
        info = bpfsys.map_info(fd)
        self.map_fd = fd
        self.name = name
        self.map_type = info.type
        self.max_entries = info.max_entries
        self.percpu = info.type in bpfsys.PERCPU_TYPES
        for what, have, want in (("key", info.key_size, ct.sizeof(key_type)),
                                 ("value", info.value_size, ct.sizeof(value_type))):
            if have != want:
                raise MapLayoutError(
                    f"map {name}: the kernel's {what} is {have} bytes, the collector expects "
                    f"{want}: bpf/sitevis.c and the collector are from different versions")
        self.Key = key_type
        self.Leaf = _percpu_leaf(value_type, possible_cpus()) if self.percpu else value_type

    def __len__(self) -> int:
        return self.max_entries

    def __getitem__(self, key):
        value = self.Leaf()
        res = bpfsys.elem(bpfsys.MAP_LOOKUP_ELEM, self.map_fd, key, value)
        if res == -errno.ENOENT:
            raise KeyError(key)
        bpfsys.check(res, f"looking up in map {self.name}")
        return value

    getvalue = __getitem__

    def __setitem__(self, key, value) -> None:
        bpfsys.check(bpfsys.elem(bpfsys.MAP_UPDATE_ELEM, self.map_fd, key, value),
                     f"updating map {self.name}")

    def __delitem__(self, key) -> None:
        res = bpfsys.elem(bpfsys.MAP_DELETE_ELEM, self.map_fd, key)
        if res == -errno.ENOENT:
            raise KeyError(key)
        bpfsys.check(res, f"deleting from map {self.name}")

    def clearitem(self, key) -> None:
        """Zero an array slot (array entries cannot be deleted)."""
        self[key] = self.Leaf()

    def keys(self) -> list:
        """Every key present now (a snapshot: the map may change meanwhile)."""
        found: list = []
        key = None
        while True:
            next_key = self.Key()
            res = bpfsys.elem(bpfsys.MAP_GET_NEXT_KEY, self.map_fd, key, next_key)
            if res == -errno.ENOENT:
                return found
            bpfsys.check(res, f"walking map {self.name}")
            found.append(next_key)
            key = next_key

    def __iter__(self) -> Iterator:
        return iter(self.keys())

    def items(self) -> Iterator[tuple]:
        for key in self.keys():
            try:
                yield key, self[key]
            except KeyError:
                continue  # deleted since the walk

    def close(self) -> None:
        if self.map_fd >= 0:
            os.close(self.map_fd)
            self.map_fd = -1
