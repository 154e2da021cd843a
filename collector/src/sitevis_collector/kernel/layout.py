"""The kernel<->Python contract, checked at every load: the collector's mirror
(structs.py: the key and value structs of every map, the counter indices) against what
BCC built from bpf/sitevis_types.h. Field by field — name, offset, size — so two
swapped fields of one size are caught, not only a struct that grew. A mismatch is one
line naming the map, the struct and the field."""

from __future__ import annotations

import re
from pathlib import Path

from sitevis_collector.kernel.compiler import describe
from sitevis_collector.kernel.structs import COUNTERS, MAP_TYPES

TYPES_HEADER = "sitevis_types.h"
Layout = list[list]  # [[field name, offset, size], ...]; [["", 0, size]] for a scalar


class LayoutMismatch(Exception):
    """The BPF source and the collector disagree about the contract."""


def _first_difference(theirs: Layout, ours: Layout) -> str | None:
    by_name = {name: (offset, size) for name, offset, size in theirs}
    for name, offset, size in ours:
        if name not in by_name:
            return f"field {name or '(value)'} is missing in the source"
        if by_name[name] != (offset, size):
            got = by_name[name]
            return (f"field {name or '(value)'} is at offset {got[0]} ({got[1]} bytes) in "
                    f"the source, the collector expects offset {offset} ({size} bytes)")
    extra = sorted(set(by_name) - {name for name, *_ in ours})
    return f"field {extra[0]} is unknown to the collector" if extra else None


def check_maps(layouts: dict[str, dict[str, Layout]]) -> None:
    """layouts: map name -> {"key": ..., "leaf": ...} as BCC built them; maps without
    typed entries (the ring buffer) are not in MAP_TYPES and have nothing to check."""
    for name, built in sorted(layouts.items()):
        if name not in MAP_TYPES:
            continue
        key_type, value_type = MAP_TYPES[name]
        for what, side, ours in (("key", "key", key_type), ("value", "leaf", value_type)):
            problem = _first_difference(built[side], describe(ours))
            if problem:
                raise LayoutMismatch(f"map {name}, {what} struct: {problem}: the BPF "
                                     "source and the collector are from different versions")


_DEFINE = re.compile(r"^#define\s+(CNT_\w+)\s+(\d+)\b", re.MULTILINE)


def check_counters(bpf_dir: Path) -> None:
    """The CNT_* indices of the types header against structs.COUNTERS."""
    header = bpf_dir / TYPES_HEADER
    try:
        theirs = {name: int(value) for name, value in _DEFINE.findall(header.read_text())}
    except OSError as exc:
        raise LayoutMismatch(f"cannot read {header}: {exc.strerror}") from exc
    for name, index in COUNTERS.items():
        if theirs.get(name) != index:
            raise LayoutMismatch(f"counter {name} is {theirs.get(name, 'missing')} in "
                                 f"{header}, the collector expects {index}: the BPF source "
                                 "and the collector are from different versions")
