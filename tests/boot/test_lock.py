"""The DynamoDB compile lock: one holder, expiry takeover, concurrent boots compile exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from boot_fakes import BootAws, RecordingEngine, memory_metrics

from agentfleet.serve.boot.cache_key import CacheKeyInputs
from agentfleet.serve.boot.lock import CompileLock, LockLost
from agentfleet.serve.boot.sequence import Boot, BootResult

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_only_one_holder_until_release(boot_aws: BootAws) -> None:
    clock = Clock()
    a = CompileLock(boot_aws.dynamodb, boot_aws.table, f"k-{boot_aws.revision}", "a", ttl_seconds=60, clock=clock)
    b = CompileLock(boot_aws.dynamodb, boot_aws.table, f"k-{boot_aws.revision}", "b", ttl_seconds=60, clock=clock)
    assert a.acquire() and not b.acquire()
    assert a.acquire(), "re-taking our own lock succeeds"
    assert b.holder() == ("a", clock.now + 60)
    b.release()  # not ours: must not delete a's lock
    assert not b.acquire()
    a.release()
    assert b.acquire() and b.holder() is not None and b.holder()[0] == "b"  # type: ignore[index]


def test_an_expired_lock_is_taken_over(boot_aws: BootAws) -> None:
    clock = Clock()
    dead = CompileLock(boot_aws.dynamodb, boot_aws.table, f"k-{boot_aws.revision}", "dead", ttl_seconds=30, clock=clock)
    live = CompileLock(boot_aws.dynamodb, boot_aws.table, f"k-{boot_aws.revision}", "live", ttl_seconds=30, clock=clock)
    assert dead.acquire()
    clock.now += 29
    assert not live.acquire(), "not expired yet"
    clock.now += 2
    assert live.acquire(), "the dead holder's lock expired"
    with pytest.raises(LockLost):
        dead.renew()
    live.renew()
    assert live.holder() == ("live", clock.now + 30)


def test_a_waiter_takes_over_from_a_dead_compiler_and_compiles(boot_aws: BootAws, tmp_path: Path) -> None:
    settings = boot_aws.settings(tmp_path)
    engine = RecordingEngine()
    boot = Boot(settings, engine, "trn2", boot_aws.deps(lock_ttl_s=3), owner="survivor")
    # A holder that died mid-compile: its lock item stays until it expires (in 3 s); nobody publishes.
    cache_key = CacheKeyInputs.from_settings(settings, engine_version="0.4.5", compiler_version="2.27.5334.0").key()
    stale = CompileLock(boot_aws.dynamodb, boot_aws.table, cache_key, "dead-host", ttl_seconds=3)
    assert stale.acquire()
    started = time.monotonic()
    result = boot.run()
    assert time.monotonic() - started >= 1.5, "it waited for the holder before taking over"
    assert len(engine.compiles) == 1 and result.published and result.compiled


def test_three_concurrent_boots_compile_exactly_once(boot_aws: BootAws, tmp_path: Path) -> None:
    engine = RecordingEngine(compile_seconds=0.6)  # shared: counts compiles across "instances"
    results: dict[int, BootResult] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def instance(i: int) -> None:
        try:
            boot = Boot(boot_aws.settings(tmp_path / f"host{i}"), engine, "trn2",
                        boot_aws.deps(memory_metrics()), owner=f"host{i}")
            barrier.wait()
            results[i] = boot.run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=instance, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(engine.compiles) == 1
    assert sorted(r.compiled for r in results.values()) == [False, False, True]
    assert len({r.key for r in results.values()}) == 1
    assert len(engine.loads) == 3 and all(r.backend is not None for r in results.values())
