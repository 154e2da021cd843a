"""Runs an AttachManager inside the network namespace it is started in (ip netns exec).

Speaks JSON lines: callbacks and answers on stdout, commands on stdin. Used by
test_attach.py so the manager never sees the host namespace's interfaces.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path

from sitevis_collector.hooks.interfaces import AttachManager, list_interfaces, read_counters

_out_lock = threading.Lock()


def emit(**fields: object) -> None:
    with _out_lock:
        print(json.dumps({"t": time.monotonic(), **fields}), flush=True)


class _Recorder(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        emit(ev="log", level=record.levelname, msg=record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--include", nargs="*", default=["*"])
    parser.add_argument("--exclude", nargs="*", default=[])
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--rcvbuf", type=int, default=1 << 20)
    args = parser.parse_args()

    logging.getLogger("sitevis_collector").addHandler(_Recorder())
    logging.getLogger("sitevis_collector").setLevel(logging.INFO)
    fail_add: set[str] = set()
    fail_remove: set[str] = set()

    def on_add(ifindex: int, ifname: str) -> None:
        if ifname in fail_add:
            fail_add.discard(ifname)
            emit(ev="add-failed", ifindex=ifindex, ifname=ifname)
            raise RuntimeError(f"injected failure adding {ifname}")
        emit(ev="add", ifindex=ifindex, ifname=ifname)

    def on_remove(ifindex: int, ifname: str) -> None:
        if ifname in fail_remove:
            fail_remove.discard(ifname)
            emit(ev="remove-failed", ifindex=ifindex, ifname=ifname)
            raise RuntimeError(f"injected failure removing {ifname}")
        emit(ev="remove", ifindex=ifindex, ifname=ifname)

    manager = AttachManager(on_add, on_remove, include=args.include, exclude=args.exclude,
                            reconcile_interval=args.interval, event_rcvbuf=args.rcvbuf)
    manager.start()
    emit(ev="ready")
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "fail-add":
            fail_add.add(rest[0])
        elif cmd == "fail-remove":
            fail_remove.add(rest[0])
        elif cmd == "reconcile":
            manager.reconcile()
            emit(ev="reconciled")
        elif cmd == "state":
            emit(ev="state", attached={str(k): v for k, v in manager.attached.items()},
                 alive=manager.running)
        elif cmd == "counters":
            names = {i.ifindex: i.ifname for i in list_interfaces()}
            sysfs = {}
            for name in names.values():
                stat = Path("/sys/class/net", name, "statistics")
                sysfs[name] = [int((stat / f).read_text()) for f in
                               ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")]
            netlink = {names[i]: list(c) for i, c in read_counters().items()}
            emit(ev="counters", netlink=netlink, sysfs=sysfs)
        elif cmd == "stop":
            began = time.monotonic()
            manager.stop()
            emit(ev="stopped", seconds=time.monotonic() - began, alive=manager.running)
            return


if __name__ == "__main__":
    main()
