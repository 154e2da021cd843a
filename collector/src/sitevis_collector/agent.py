"""The box agent: attach to matching interfaces, drain every interval, hand points on.

    AttachManager (netlink) ──on_add/on_remove──▶ hooks (tc/xdp) + Drainer
    every interval: Drainer.drain ─▶ aggregate (+ kernel counters, self-metrics) ─▶ sink
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from sitevis_collector.config import Config
from sitevis_collector.errors import ClaimedByPeerError, InterfaceGoneError, KernelError
from sitevis_collector.export.aggregate import CounterDeltas, iter_points, new_budget
from sitevis_collector.export.lineproto import Point
from sitevis_collector.hooks import hooks_for, instances
from sitevis_collector.hooks.interfaces import (
    AttachManager,
    Counters,
    list_interfaces,
    read_counters,
)
from sitevis_collector.kernel.bpfstats import NsPerPacket
from sitevis_collector.kernel.drain import Drainer
from sitevis_collector.kernel.program import FlowProgram, KernelSettings
from sitevis_collector.records import DrainResult

log = logging.getLogger("sitevis_collector.agent")

Sink = Callable[[Iterable[Point]], None]
StatsSource = Callable[[], dict[str, int]]


def release_freed_heap() -> bool:
    """Return the C heap's free pages to the kernel (glibc's malloc_trim).

    glibc keeps large freed blocks (an interval's dict tables) mapped until they are
    reused: RSS for nothing between intervals. False where there is no malloc_trim (musl).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return False
    trim(0)
    return True


def kernel_settings(cfg: Config) -> KernelSettings:
    return KernelSettings(
        table_size=cfg.flow_table_size,
        sample_rate=cfg.sample_rate,
        sample_limit=cfg.sample_rate_limit,
        hook=cfg.hook,
    )


class Agent:
    """Owns the loaded program, its hooks and the attach manager for one network namespace."""

    def __init__(self, cfg: Config, reconcile_interval: float = 30.0) -> None:
        self.cfg = cfg
        self.program = FlowProgram(kernel_settings(cfg), bpf_dir=cfg.bpf_dir)
        try:
            # Registered before anything is attached: from now on no other instance
            # takes our programs for a gone one's.
            self.registration = instances.register(
                str(cfg.source), cfg.interfaces.include, cfg.interfaces.exclude,
                self.program.prog_ids)
        except BaseException:
            self.program.close()
            raise
        self._netns = instances.netns_id()
        self.hooks = hooks_for(self.program, tc_attach=cfg.tc_attach)
        self.drainer = Drainer(self.program)
        self._lock = threading.Lock()            # names, baselines, drainer vs. attach thread
        self._hooks_lock = threading.Lock()      # one netlink socket: attach thread vs. repair
        self.filters_restored = 0
        self._names: dict[int, str] = {}
        # Removed interfaces whose name the next drain still needs (their last flows).
        self._gone: set[int] = set()
        self._kernel_prev: dict[int, Counters] = {}
        self._ns_per_packet = NsPerPacket()
        # Which talkers keep their addresses: learnt across intervals (export/budget.py).
        self.budget = new_budget(cfg)
        self.manager = AttachManager(
            self._on_add, self._on_remove,
            include=cfg.interfaces.include, exclude=cfg.interfaces.exclude,
            reconcile_interval=reconcile_interval,
        )

    # -- attach callbacks (attach manager's thread) ------------------------------------

    def _older_peer_tracing(self, ifname: str,
                            peers: list[instances.Instance] | None = None
                            ) -> instances.Instance | None:
        """A live instance started before this one whose patterns take the interface:
        the interface is its (two collectors on one would count it twice). peers: the
        live instances, when the caller read them already."""
        me = self.registration.instance
        live = instances.live_instances() if peers is None else peers
        return next((peer for peer in live
                     if peer.older_than(me) and peer.traces(ifname, self._netns)), None)

    def _on_add(self, ifindex: int, ifname: str) -> None:
        peer = self._older_peer_tracing(ifname)
        if peer is not None:  # the attach manager logs it and tries again later
            raise ClaimedByPeerError(f"{ifname} is traced by {peer.describe()}; "
                                     "not attaching a second collector to it")
        with self._hooks_lock:
            removed = self.hooks.remove_stale(ifindex)
            if removed:
                log.info("%s: removed %d stale filter(s) of an earlier run", ifname, removed)
            baseline = read_counters(indexes=[ifindex]).get(ifindex)
            self.hooks.attach(ifindex, self.cfg.directions)
        with self._lock:
            self._names[ifindex] = ifname
            self._gone.discard(ifindex)
            if baseline is not None:
                self._kernel_prev[ifindex] = baseline
        log.info("attached to %s (ifindex %d)", ifname, ifindex)

    def _on_remove(self, ifindex: int, ifname: str) -> None:
        # A vanished interface took our filters with it.
        with self._hooks_lock, contextlib.suppress(InterfaceGoneError):
            self.hooks.detach(ifindex)
        with self._lock:
            self._kernel_prev.pop(ifindex, None)
            self._gone.add(ifindex)
        log.info("detached from %s (ifindex %d)", ifname, ifindex)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Attach to the matching interfaces; refuse (ClaimedByPeerError, nothing
        attached) when an interface we would take is already traced by a running
        instance."""
        peers = instances.live_instances()  # read once, not per interface
        for iface in list_interfaces():
            if not self.manager.patterns.matches(iface.ifname):
                continue
            peer = self._older_peer_tracing(iface.ifname, peers)
            if peer is not None:
                raise ClaimedByPeerError(
                    f"{iface.ifname} is already traced by {peer.describe()}: two "
                    "collectors on one interface would count it twice; exclude it from "
                    "one of their configs")
        self.manager.start()

    def close(self) -> None:
        """Stop following links and remove every filter of ours."""
        self.manager.stop()
        self.manager.detach_all()
        self.manager.close()
        self.hooks.detach_all()
        self.hooks.close()
        self.drainer.close()
        self.program.close()
        self.registration.close()

    @property
    def attached(self) -> dict[int, str]:
        return self.manager.attached

    # -- one interval ------------------------------------------------------------------

    def repair(self) -> int:
        """Put back filters of ours that someone deleted (`tc filter del`, another tool's
        cleanup): the interface set did not change, so link events never say so. Only
        this instance's programs count: a peer's program on the hook is not ours."""
        missing_on = self.hooks.own_directions
        restored = 0
        for ifindex, ifname in self.attached.items():
            with self._hooks_lock, contextlib.suppress(InterfaceGoneError):
                present = set(missing_on(ifindex))
                if not set(self.cfg.directions) <= present:
                    log.warning("%s: our filters were removed by someone else; restoring",
                                ifname)
                    try:
                        self.hooks.attach(ifindex, self.cfg.directions)
                    except InterfaceGoneError:
                        raise
                    except KernelError as exc:  # e.g. a foreign XDP program took the hook
                        log.warning("%s: not restored: %s", ifname, exc)
                        continue
                    restored += 1
        self.filters_restored += restored
        return restored

    def _kernel_deltas(self) -> dict[tuple[str, str], tuple[int, int]]:
        now = read_counters(indexes=list(self._names))
        deltas: dict[tuple[str, str], tuple[int, int]] = {}
        for ifindex, ifname in self._names.items():
            current, prev = now.get(ifindex), self._kernel_prev.get(ifindex)
            if current is None:
                continue
            if prev is not None:
                for direction in self.cfg.directions:
                    (p1, b1), (p0, b0) = current.direction(direction), prev.direction(direction)
                    # Two ifindexes may carry one name within an interval (deleted and
                    # re-created): add them up, as the drain does for BPF's totals.
                    p, b = deltas.get((ifname, direction), (0, 0))
                    deltas[(ifname, direction)] = (p + p1 - p0, b + b1 - b0)
            self._kernel_prev[ifindex] = current
        return deltas

    def drain(self) -> tuple[DrainResult, dict[tuple[str, str], tuple[int, int]]]:
        with self._lock:
            result = self.drainer.drain(dict(self._names))
            kernel = self._kernel_deltas()
            # Their last flows are out: forget removed interfaces, so a box whose
            # containers come and go for months keeps no state per interface ever seen.
            for ifindex in self._gone:
                self._names.pop(ifindex, None)
            self._gone.clear()
        return result, kernel

    def collect(self, stats: dict[str, int] | None = None) -> list[Point]:
        """Drain now and return this interval's points, stamped with the interval's end."""
        return list(self.points(stats))

    def points(self, stats: dict[str, int] | None = None) -> Iterator[Point]:
        """collect(), one point at a time: the drain happens at once, the points are made
        as the consumer asks for them (an interval of 100k flows is never held twice)."""
        result, kernel = self.drain()
        end_ns = time.time_ns()
        fields: dict[str, int | float] = dict(stats or {})
        fields["interfaces_attached"] = len(self.attached)
        fields["filters_restored"], self.filters_restored = self.filters_restored, 0
        ns = self._ns_per_packet.sample(
            self.program.function_fd(d) for d in self.program.directions)
        if ns is not None:
            fields["bpf_ns_per_packet"] = ns
        return iter_points(result, self.cfg, end_ns, kernel=kernel, stats=fields,
                           consume=True, budget=self.budget)


def run_loop(agent: Agent, sink: Sink, stop: threading.Event,
             stats: StatsSource | None = None,
             after: Callable[[], None] | None = None) -> int:
    """Collect every cfg.interval until stop is set, then collect once more (the partial
    interval) so nothing seen before SIGTERM is lost. Returns the number of intervals."""
    deltas = CounterDeltas()
    interval = agent.cfg.interval
    next_at = time.monotonic() + interval
    intervals = 0
    while True:
        stopping = stop.wait(max(0.0, next_at - time.monotonic()))
        next_at += interval
        try:
            agent.repair()
            sink(agent.points(deltas.update(stats()) if stats else None))
            intervals += 1
            if after is not None:
                after()
            # An interval's flows, rows and lines are freed by now; glibc would keep the
            # large blocks (dict tables) mapped until the next interval reuses them.
            release_freed_heap()
        except KernelError as err:
            log.error("interval lost: %s", err)
        except Exception:  # a surprise in one interval must not end the collector
            log.exception("interval lost to an unexpected error")
        if stopping:
            return intervals
