"""Consumer side of a BPF ring buffer map, read through mmap (no libbpf needed).

Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (ours to write),
page 1 the producer position, then the data area mapped twice in a row so a record
that wraps around the end can be read in one piece. Each record starts with an
8-byte header: u32 length with a busy bit (still being written) and a discard bit,
then u32 page offset; records are 8-byte aligned.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HEADER = 8
_U64 = struct.Struct("=Q")
_U32 = struct.Struct("=I")


class RingBuffer:
    """Records of one ring buffer map; consume() hands each to a callback."""

    def __init__(self, map_fd: int, data_size: int, on_record: Callable[[bytes], None]) -> None:
        if data_size <= 0 or data_size & (data_size - 1):
            raise ValueError(f"ring buffer size {data_size} is not a power of two")
        page = mmap.PAGESIZE
        self._mask = data_size - 1
        self._on_record = on_record
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page + 2 * data_size, mmap.MAP_SHARED,
                                   mmap.PROT_READ, offset=page)
        self._data_offset = page

    def consume(self) -> int:
        """Hand every complete record to the callback; return how many. Non-blocking."""
        cons = _U64.unpack_from(self._consumer, 0)[0]
        prod = _U64.unpack_from(self._producer, 0)[0]
        handled = 0
        while cons < prod:
            at = self._data_offset + (cons & self._mask)
            length = _U32.unpack_from(self._producer, at)[0]
            if length & _BUSY:
                break  # reserved but not yet committed: later records wait for it
            size = length & ~(_BUSY | _DISCARD)
            if not length & _DISCARD:
                self._on_record(self._producer[at + _HEADER:at + _HEADER + size])
                handled += 1
            cons += (size + _HEADER + 7) & ~7
            # Publishing the position frees the space; the record was copied above
            # (on x86 a store is never reordered before earlier loads).
            _U64.pack_into(self._consumer, 0, cons)
            if cons >= prod:
                prod = _U64.unpack_from(self._producer, 0)[0]
        return handled

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()
