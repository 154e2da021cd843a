"""Heavy-hitter admission with hysteresis and a bounded admission rate.

A box sees an unbounded stream of keys (peers come and go every second); every key it
writes in detail is an InfluxDB series. Admission keeps a set of at most `capacity`
keys, scored by their exponentially decayed weight (bytes), and lets a newcomer in only

- while tokens last: a bucket refilled at `per_hour` and holding at most ten minutes'
  worth (plus the initial fill of `capacity`), so a day admits at most
  capacity + 24 x per_hour + burst keys, whatever the traffic; and
- when the set has room, or when the newcomer replaces the weakest member: its score
  beats the weakest's by the factor `hysteresis`, so two keys of similar weight do not
  take turns and create a series each time, and it is a heavy hitter, at least
  `min_share` of the decayed weight of every key seen (admitted or not), so a scan's
  single-packet peers, beside which the weakest members have decayed to nothing, do not
  spend every admission on a series of one packet.

Newcomers wait in a candidate table of bounded size (4 x capacity, the heaviest kept),
where their scores decay the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)

CANDIDATES_PER_SLOT = 4     # candidate table size, per admitted slot
BURST_SECONDS = 600.0       # the token bucket holds this much refill
FORGET_BELOW = 1e-3         # a candidate whose score decayed below this is forgotten


def _score(item: tuple[object, float]) -> float:
    return item[1]


class Admission(Generic[K]):
    """The set of admitted keys; update() once per interval with that interval's weights."""

    def __init__(self, capacity: int, per_hour: float, *, hysteresis: float = 2.0,
                 half_life: float = 600.0, interval: float = 10.0,
                 min_share: float = 0.0) -> None:
        self.capacity = capacity
        self.hysteresis = hysteresis
        self.min_share = min_share
        self.total = 0.0                    # decayed weight of every key seen
        self.interval = interval
        self.decay = 0.5 ** (interval / half_life)
        self.refill = per_hour * interval / 3600.0
        self.burst = max(1.0, per_hour * BURST_SECONDS / 3600.0)
        self.tokens = float(capacity)       # the first intervals may fill the set at once
        self.admitted: dict[K, float] = {}
        self.candidates: dict[K, float] = {}
        self.admissions = 0                 # keys admitted since the start
        self.evictions = 0

    def __contains__(self, key: K) -> bool:
        return key in self.admitted

    def __len__(self) -> int:
        return len(self.admitted)

    def update(self, weights: Iterable[tuple[K, int]]) -> int:
        """Add one interval's weights, then admit what deserves it; returns how many
        keys were admitted now."""
        self._decay()
        admitted, candidates = self.admitted, self.candidates
        for key, weight in weights:
            self.total += weight
            if key in admitted:
                admitted[key] += weight
            else:
                candidates[key] = candidates.get(key, 0.0) + weight
        if self.tokens < self.burst:     # (the initial fill may hold more: left as it is)
            self.tokens = min(self.burst, self.tokens + self.refill)
        new = self._admit()
        self._trim()
        return new

    def state(self) -> dict:
        """What a restart must not forget (export/budget_state.py): the admitted keys with
        their scores and the tokens left. Candidates are not kept: they are light by
        definition, and a restart costs them only their waiting."""
        return {"admitted": [[list(k) if isinstance(k, tuple) else k, s]
                             for k, s in self.admitted.items()],
                "tokens": self.tokens, "total": self.total}

    def restore(self, state: dict, elapsed_s: float) -> None:
        """Take a state() saved `elapsed_s` ago: scores decayed and the bucket refilled
        for that long, as if the process had run on without traffic; without the initial
        fill, so restarts do not add to what a day admits. At most `capacity` keys (the
        heaviest) stay when the capacity shrank."""
        intervals = max(0.0, elapsed_s) / self.interval
        factor = self.decay ** intervals
        found: dict[K, float] = {}
        for key, score in state["admitted"]:
            # JSON has no tuples: a talker's key comes back as a list.
            found[cast(K, tuple(key) if isinstance(key, list) else key)] = float(score) * factor
        self.admitted = dict(heapq.nlargest(self.capacity, found.items(), key=_score))
        tokens = float(state["tokens"])
        if tokens < self.burst:
            tokens = min(self.burst, tokens + self.refill * intervals)
        self.tokens = min(tokens, float(self.capacity))
        # A state saved before min_share existed has no total: the first intervals set it.
        self.total = float(state.get("total", 0.0)) * factor

    def _decay(self) -> None:
        d = self.decay
        self.total *= d
        for table in (self.admitted, self.candidates):
            for key in table:
                table[key] *= d
        if self.candidates:
            self.candidates = {k: s for k, s in self.candidates.items() if s >= FORGET_BELOW}

    def _admit(self) -> int:
        if not self.candidates or self.tokens < 1 or self.capacity == 0:
            return 0
        best = heapq.nlargest(int(self.tokens), self.candidates.items(), key=_score)
        floor = self.min_share * self.total    # what a replacement must weigh
        # The weakest members, lightest first, to be replaced one by one.
        weakest: list[tuple[float, int, K]] = []
        new = 0
        for key, score in best:
            if len(self.admitted) >= self.capacity:
                if score < floor:
                    break       # not a heavy hitter, nor is any lighter one
                if not weakest:
                    weakest = [(s, i, k) for i, (k, s) in enumerate(self.admitted.items())]
                    heapq.heapify(weakest)
                while weakest and weakest[0][2] not in self.admitted:
                    heapq.heappop(weakest)          # admitted and evicted within this call
                if not weakest or score <= self.hysteresis * weakest[0][0]:
                    break       # the rest are lighter still
                _, _, victim = heapq.heappop(weakest)
                self.candidates[victim] = self.admitted.pop(victim)
                self.evictions += 1
            del self.candidates[key]
            self.admitted[key] = score
            self.tokens -= 1
            new += 1
        self.admissions += new
        return new

    def _trim(self) -> None:
        limit = max(CANDIDATES_PER_SLOT * self.capacity, 64)
        if len(self.candidates) > limit:
            self.candidates = dict(heapq.nlargest(limit, self.candidates.items(), key=_score))
