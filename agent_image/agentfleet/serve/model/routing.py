"""ReplicaRouter: which model replica serves a request, and how busy each one is.

"affinity" mode hashes the request's affinity key (agent, or agent and subject) onto a consistent-hash
ring of the live replicas: one agent's requests land on one replica, whose prefix cache then keeps that
agent's stable prompt header; when a replica dies only its keys move (to their next replica on the ring)
and every other key stays where it was. "random" mode picks any live replica (the bench's baseline).
A request without a key goes to the least busy live replica. In-flight counters are per replica.
"""

from __future__ import annotations

import hashlib
import random
import threading
from bisect import bisect_left
from collections.abc import Iterable

ROUTING_MODES = ("affinity", "random")
VIRTUAL_NODES = 64  # ring points per replica: keys spread evenly over a handful of replicas


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class ReplicaRouter:
    """Live set, routing and per-replica in-flight counts for `count` replicas (indices 0..count-1)."""

    def __init__(self, count: int, slots_per_replica: int, mode: str = "affinity",
                 rng: random.Random | None = None) -> None:
        if count < 1 or slots_per_replica < 1:
            raise ValueError(f"need at least one replica and one slot, got {count} x {slots_per_replica}")
        if mode not in ROUTING_MODES:
            raise ValueError(f"routing must be one of {ROUTING_MODES}, got {mode!r}")
        self.count, self.slots_per_replica, self.mode = count, slots_per_replica, mode
        self._rng = rng or random.Random()  # load spreading, not security
        self._lock = threading.Lock()
        self._live = set(range(count))
        self._busy = [0] * count
        self._ring = sorted((_point(f"replica-{i}#{v}"), i) for i in range(count) for v in range(VIRTUAL_NODES))
        self._points = [p for p, _ in self._ring]

    def set_live(self, live: Iterable[int]) -> None:
        """The replicas that answer (the supervisor's view); unknown indices are ignored."""
        with self._lock:
            self._live = {i for i in live if 0 <= i < self.count}

    def mark_down(self, index: int) -> None:
        """A replica refused a connection: route around it until the supervisor says it is back."""
        with self._lock:
            self._live.discard(index)

    def live(self) -> list[int]:
        with self._lock:
            return sorted(self._live)

    @property
    def slots(self) -> int:
        """Requests the live replicas run at once (live replicas x max_num_seqs)."""
        with self._lock:
            return len(self._live) * self.slots_per_replica

    def pick(self, key: str) -> int:
        """The replica for a request with this affinity key. With no live replica, every replica is a
        candidate again (the request then fails or retries against a real server, never silently)."""
        with self._lock:
            live = self._live or set(range(self.count))
            if not key:
                return min(sorted(live), key=lambda i: self._busy[i])
            if self.mode == "random":
                return self._rng.choice(sorted(live))
            start = bisect_left(self._points, _point(key))
            for offset in range(len(self._ring)):
                index = self._ring[(start + offset) % len(self._ring)][1]
                if index in live:
                    return index
        raise AssertionError("unreachable: the ring holds every replica")

    def acquire(self, index: int) -> None:
        with self._lock:
            self._busy[index] += 1

    def release(self, index: int) -> None:
        with self._lock:
            self._busy[index] -= 1

    def load(self) -> list[tuple[int, int]]:
        """(busy, slots) per replica, in replica order; a replica that is down has 0 slots."""
        with self._lock:
            return [(self._busy[i], self.slots_per_replica if i in self._live else 0) for i in range(self.count)]
