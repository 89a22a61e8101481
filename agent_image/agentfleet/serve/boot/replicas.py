"""ReplicaSet: R `vllm serve` processes on one instance, each pinned to its own NeuronCores, supervised.

Replica i runs with NEURON_RT_VISIBLE_CORES = cores i*TP .. (i+1)*TP-1 ("a single NeuronCore index or an
inclusive range value"; "once a NeuronCore is reserved for a process, it cannot be used by another
process ... until the process reserving that NeuronCore is terminated": aws-neuron-sdk
neuron-runtime/guides/configuration-guide.rst "Using NEURON_RT_VISIBLE_CORES", read 2026-12-01) and
listens on its own port. All replicas read the one compiled artifact folder (VLLM_CACHE_ROOT), so one
compile serves every replica. The supervisor polls each replica's GET /health; a replica whose process
died, or that failed UNHEALTHY_POLLS polls in a row, is stopped (waiting only for its own cores) and
started again with bounded exponential backoff. `serving()` is False only when no replica answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agentfleet.ops import logs
from agentfleet.serve.boot.vllm_server import VllmServer

log = logs.get(__name__)

ServerStarter = Callable[[int], VllmServer]  # starts replica i (its cores, its port) without waiting
UNHEALTHY_POLLS = 3


def core_range(index: int, tp: int) -> tuple[int, ...]:
    return tuple(range(index * tp, (index + 1) * tp))


def visible_cores(cores: tuple[int, ...]) -> str:
    """NEURON_RT_VISIBLE_CORES for a contiguous block of cores: "4" or "4-7"."""
    return str(cores[0]) if len(cores) == 1 else f"{cores[0]}-{cores[-1]}"


class ReplicaSet:
    """The replicas of one instance; `on_change(live indices)` tells the backend where to route."""

    def __init__(self, start: ServerStarter, count: int, *, ready_timeout_s: float, poll_s: float = 5.0,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 on_change: Callable[[list[int]], None] | None = None) -> None:
        if count < 1:
            raise ValueError(f"a replica set needs at least one replica, got {count}")
        self.start, self.count, self.ready_timeout_s, self.poll_s = start, count, ready_timeout_s, poll_s
        self.backoff_s, self.max_backoff_s, self.on_change = backoff_s, max_backoff_s, on_change
        self.servers: list[VllmServer | None] = [None] * count
        self.restarts = [0] * count
        self._bad_polls = [0] * count
        self._failures = [0] * count
        self._next_try = [0.0] * count
        self._restarting: set[int] = set()
        self._live: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def adopt(self, index: int, server: VllmServer) -> None:
        """A server already running for replica `index` (the one that compiled)."""
        self.servers[index] = server

    def start_all(self) -> None:
        """Start every replica not yet running (they load in parallel), then wait until each answers."""
        try:
            for i in range(self.count):
                if self.servers[i] is None:
                    self.servers[i] = self.start(i)
            for server in self.servers:
                assert server is not None
                server.wait_ready(self.ready_timeout_s)
        except BaseException:
            self.stop(wait_for_cores=False)
            raise
        self._set_live(list(range(self.count)))
        log.info("model replicas ready", extra={"replicas": self.count,
                                                "ports": [s.port for s in self.servers if s is not None]})

    def base_urls(self) -> list[str]:
        return [s.base_url for s in self.servers if s is not None]

    def live(self) -> list[int]:
        with self._lock:
            return list(self._live)

    def serving(self) -> bool:
        """At least one replica answers: the instance is healthy while this holds."""
        return bool(self.live())

    def _set_live(self, live: list[int]) -> None:
        with self._lock:
            changed, self._live = live != self._live, live
        if changed:
            log.info("live model replicas", extra={"live": live, "replicas": self.count})
            if self.on_change is not None:
                self.on_change(live)

    def check(self) -> list[int]:
        """One supervision pass: probe each replica, restart those that are gone; returns the live ones."""
        live = []
        for i, server in enumerate(self.servers):
            with self._lock:
                if i in self._restarting:
                    continue
            if server is not None and server.healthy():
                self._bad_polls[i] = 0
                live.append(i)
                continue
            self._bad_polls[i] += 1
            dead = server is None or not server.alive() or self._bad_polls[i] >= UNHEALTHY_POLLS
            if dead and time.monotonic() >= self._next_try[i]:
                with self._lock:
                    self._restarting.add(i)
                threading.Thread(target=self._restart, args=(i,), name=f"replica-{i}-restart", daemon=True).start()
        self._set_live(live)
        return live

    def _restart(self, index: int) -> None:
        old = self.servers[index]
        code = None if old is None else old.process.poll()
        log.warning("model replica down; restarting", extra={"replica": index, "exit_code": code,
                                                             "attempt": self._failures[index] + 1})
        try:
            if old is not None:
                old.stop()  # waits until this replica's cores are free; the others keep theirs
            server = self.start(index)
            self.servers[index] = server
            server.wait_ready(self.ready_timeout_s)
            self._failures[index], self._bad_polls[index] = 0, 0
            self.restarts[index] += 1
            log.info("model replica restarted", extra={"replica": index, "port": server.port})
        except Exception as exc:
            self._failures[index] += 1
            wait = min(self.max_backoff_s, self.backoff_s * 2 ** (self._failures[index] - 1))
            self._next_try[index] = time.monotonic() + wait
            log.error("model replica restart failed", extra={"replica": index, "error": str(exc)[:300],
                                                             "retry_in_s": wait})
        finally:
            with self._lock:
                self._restarting.discard(index)

    def supervise(self) -> None:
        """Poll every poll_s in a daemon thread until stop()."""
        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                self.check()

        self._thread = threading.Thread(target=loop, name="replica-supervisor", daemon=True)
        self._thread.start()

    def stop(self, wait_for_cores: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5)
        for server in self.servers:
            if server is not None:
                server.stop(wait_for_cores=wait_for_cores)
        self._set_live([])
