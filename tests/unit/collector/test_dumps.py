"""Netlink dumps interrupted by link changes are taken again, then the error goes on."""

from __future__ import annotations

import pytest
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted
from sitevis_collector.hooks.dumps import dump_retrying


def interrupted_then(times: int, answer: list[int]):
    calls = {"n": 0}

    def dump() -> list[int]:
        calls["n"] += 1
        if calls["n"] <= times:
            raise NetlinkDumpInterrupted()
        return answer

    return dump, calls


def test_an_interrupted_dump_is_taken_again():
    dump, calls = interrupted_then(3, [1, 2])
    assert dump_retrying(dump) == [1, 2] and calls["n"] == 4


def test_a_dump_interrupted_every_time_raises_after_the_last_try():
    dump, calls = interrupted_then(100, [])
    with pytest.raises(NetlinkDumpInterrupted):
        dump_retrying(dump, attempts=3)
    assert calls["n"] == 3
