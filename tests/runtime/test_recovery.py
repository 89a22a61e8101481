"""Crashes: a worker dying before its checkpoint, and a worker SIGKILLed mid-stream.

Invariants 1 and 2: no event is lost (the records come back to another worker once the
lease expires) and no action is taken twice (the execution name is the decision id).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.local.emulator import free_port
from agentfleet.local.resources import write_config_document
from agentfleet.local.watch import unacknowledged
from agentfleet.spec.catalog import subscribers
from tests.runtime.fakes import ScriptedBackend, decision_text
from tests.runtime.support import Fleet, cdk_agents, event, subprocess_env, wait_for_count, wait_until

pytestmark = pytest.mark.integration


class SimulatedCrash(BaseException):
    """Escapes the worker loop like a process death would: no drain, no release."""


def test_replay_after_a_crash_before_checkpoint_rederives_but_never_acts_twice(fleet: Fleet, running: Any) -> None:
    events = [event("ci.failed", f"svc-{i}", {"want": "notify"}) for i in range(6)]
    fleet.put(events)
    expected = sum(len(subscribers(fleet.agents, e["type"])) for e in events)

    first = Worker(fleet.settings(batch_size=8), ScriptedBackend())
    first.leases.table.checkpoint = lambda *_: True  # type: ignore[method-assign]  # the write dies with the process
    crash = {"now": False}
    poll = first.shards.poll

    def poll_or_crash() -> None:
        if crash["now"]:
            raise SimulatedCrash
        poll()

    first.shards.poll = poll_or_crash  # type: ignore[method-assign]
    handle = running(first)
    decisions = wait_for_count(fleet.decisions, expected, 60, "decisions")
    executions = wait_for_count(fleet.executions, expected, 30, "executions")  # both agents notify
    crash["now"] = True
    wait_until(lambda: not handle.thread.is_alive(), 10, "the crash")
    assert isinstance(handle.result.get("error"), SimulatedCrash)
    assert not any(lease.get("checkpoint") for lease in fleet.leases()), "nothing was checkpointed"

    # The replacement decides differently this time; the recorded decision must still stand.
    second_backend = ScriptedBackend(lambda request: decision_text("ignore"))
    second = running(Worker(fleet.settings(batch_size=8), second_backend))
    wait_until(lambda: all(lease.get("checkpoint") for lease in fleet.leases()
                           if lease["shard_id"] in {d["shard_id"] for d in decisions}), 60, "replayed checkpoints")
    assert second.stop() == 0
    assert sum(second_backend.calls) == expected, "every decision was re-derived by the new owner"
    after = fleet.decisions()
    assert sorted(d["decision_id"] for d in after) == sorted(d["decision_id"] for d in decisions)
    assert {d["outcome"] for d in after} == {"acted"}
    assert {d["worker_id"] for d in after} == {first.me}
    assert sorted(e["executionArn"] for e in fleet.executions()) == sorted(e["executionArn"] for e in executions)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_sigkill_one_of_two_workers_loses_nothing_and_acts_once(
        fleet: Fleet, aws_env: Any, tiny_model_dir: Path, tmp_path: Path) -> None:
    fleet.agents = cdk_agents()
    doc = write_config_document(tmp_path / "config.json", fleet.document(
        engine="transformers-cpu", local_model_dir=str(tiny_model_dir), batch_size=4, torch_threads=1))
    procs, ports = [], []
    for i in range(2):
        port = free_port()
        env = subprocess_env(aws_env.env(), doc, worker_id=f"proc-{i}", http_port=port)
        log = open(tmp_path / f"worker-{i}.log", "wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "agentfleet.entrypoints.worker"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
        ports.append(port)
    try:
        wait_until(lambda: all(_healthy(p) for p in ports), 120, "both workers healthy")
        wait_until(lambda: sorted(Counter(lease.get("owner") for lease in fleet.leases()).values()) == [2, 2],
                   30, "two shards each")
        types = ("cloudwatch.alarm", "ci.failed", "code.push", "security.finding")
        # More than one window (2 x batch_size) per worker, so the victim is still deciding when it dies.
        first_wave = [event(types[i % 4], f"svc-{i}", {"n": i}) for i in range(24)]
        positions = fleet.put(first_wave)
        # Kill the victim right after its first decision (its log, read every 10 ms): its finish steps run
        # in parallel, so waiting for decisions in the audit table could let it acknowledge all its work.
        victim_log = tmp_path / "worker-0.log"
        wait_until(lambda: b'"decision"' in victim_log.read_bytes(), 120, "the victim's first decision", 0.01)
        procs[0].send_signal(signal.SIGKILL)
        assert procs[0].wait(10) == -signal.SIGKILL
        held = unacknowledged(lambda name: fleet.clients[name], fleet.names.leases_table, fleet.names.stream,
                              "proc-0")
        assert held > 0, "the victim died holding records it had not acknowledged"
        second_wave = [event(types[i % 4], f"svc-{i}", {"n": i}) for i in range(24, 32)]
        positions += fleet.put(second_wave)
        events = first_wave + second_wave
        expected = Counter((e["id"], a.name) for e in events for a in subscribers(fleet.agents, e["type"]))
        wait_for_count(fleet.decisions, sum(expected.values()), 150, "all decisions")
        assert {lease.get("owner") for lease in fleet.leases()} == {"proc-1"}, "the survivor took every shard"
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(30) == 0
        decisions = fleet.decisions()
        assert Counter((d["event_ids"][0], d["agent"]) for d in decisions) == expected, "0 lost, 0 duplicated"
        assert len(decisions) == sum(len(subscribers(fleet.agents, e["type"])) for e in events), "records x agents"
        at = {e["id"]: (p["shard_id"], p["sequence_number"]) for e, p in zip(events, positions, strict=True)}
        assert all((d["shard_id"], d["sequence_number"]) == at[d["event_ids"][0]] for d in decisions), \
            "each decision sits at its record's stream position"
        checkpoints = {lease["shard_id"]: int(lease.get("checkpoint", 0)) for lease in fleet.leases()}
        assert all(checkpoints[p["shard_id"]] >= int(p["sequence_number"]) for p in positions), "all checkpointed"
        executions = fleet.executions()
        names = [e["name"] for e in executions]
        assert len(names) == len(set(names)), "no execution started twice"
        dispatched = {d["decision_id"] for d in decisions if d["outcome"] in ("acted", "approval_pending")}
        assert set(names) == dispatched
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
