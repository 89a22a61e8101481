"""While the local fleet runs: how far it got (from the emulator's records), which worker to kill, and
the wait loop that polls until everything is accounted for."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet.decide.guardrails import DISPATCHED_OUTCOMES
from agentfleet.local import records
from agentfleet.local.approver import Approver
from agentfleet.local.progress import Counts, Progress
from agentfleet.local.replay import Sent
from agentfleet.local.workers import WorkerProcess, kill
from agentfleet.spec.tables import LEASES_PK


@dataclass(frozen=True)
class State:
    accounted: int  # sent records that have a decision or a quarantine record
    quarantined: int
    actions_started: int
    actions_done: int
    undispatched: int  # decisions that should act but have no execution yet
    done: bool


def poll(clients: Callable[[str], Any], names: dict[str, str], sent: Sequence[Sent]) -> State:
    """One look at the audit table and the executions; `done` once nothing is left to happen.

    A record is accounted for once a decision or a quarantine record names its stream position
    (the final summary checks the same thing by event id against the stream read back).
    """
    audit = records.read_audit(clients("dynamodb"), names["audit_table"])
    positions = {(d.get("shard_id"), d.get("sequence_number")) for d in audit.decisions + audit.quarantines}
    accounted = sum(1 for s in sent if (s.shard_id, s.sequence_number) in positions)
    executions = records.list_executions(clients("stepfunctions"), names["state_machine_arn"])
    names_started = {ex["name"] for ex in executions}
    undispatched = sum(1 for d in audit.decisions
                       if d.get("outcome") in DISPATCHED_OUTCOMES and d["decision_id"] not in names_started)
    finished = sum(1 for ex in executions if ex["status"] != "RUNNING")
    return State(accounted, len(audit.quarantines), len(executions), finished, undispatched,
                 done=accounted >= len(sent) and undispatched == 0 and finished == len(executions))


def unacknowledged(clients: Callable[[str], Any], leases_table: str, stream_name: str, worker_id: str) -> int:
    """Records on the shards `worker_id` leases that lie past their checkpoint: work it holds unfinished.
    Read right after a SIGKILL, a positive count shows the kill interrupted real work."""
    kinesis, count = clients("kinesis"), 0
    for item in records.scan_all(clients("dynamodb"), leases_table):
        shard_id = str(item[LEASES_PK])
        if item.get("owner") != worker_id or shard_id.startswith(("worker#", "lock#")):
            continue
        checkpoint = str(item.get("checkpoint", ""))
        if checkpoint == "SHARD_END":
            continue
        start: dict[str, str] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": checkpoint}
                                 if checkpoint else {"ShardIteratorType": "TRIM_HORIZON"})
        iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard_id, **start)["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            count += len(page["Records"])
            if not page["Records"] and int(page.get("MillisBehindLatest", 0) or 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return count


def kill_target(clients: Callable[[str], Any], leases_table: str, fleet: Sequence[WorkerProcess]) -> WorkerProcess:
    """The live worker holding the most unexpired shard leases (killing it loses the most in flight)."""
    now_ms = int(time.time() * 1000)
    held: dict[str, int] = {}
    for item in records.scan_all(clients("dynamodb"), leases_table):
        owner = str(item.get("owner", ""))
        if owner and int(item.get("lease_expires_ms", 0)) > now_ms and not str(item[LEASES_PK]).startswith(
                ("worker#", "lock#")):
            held[owner] = held.get(owner, 0) + 1
    alive = [w for w in fleet if w.alive]
    return max(alive, key=lambda w: held.get(w.worker_id, 0))


def wait_until_done(clients: Callable[[str], Any], names: dict[str, str], sent: Sequence[Sent],
                    fleet: Sequence[WorkerProcess], approver: Approver, counts: Counts, progress: Progress, *,
                    kill_one: bool, timeout_s: float, logs_dir: Path) -> tuple[list[str], int]:
    """Poll the emulator until everything is accounted for; SIGKILL one worker mid-run if asked.
    Returns the killed workers and how many records the victim held unacknowledged when it died."""
    killed: list[str] = []
    held = 0
    deadline = time.monotonic() + timeout_s
    while True:
        state = poll(clients, names, sent)
        counts.accounted, counts.quarantined = state.accounted, state.quarantined
        counts.actions_started, counts.actions_done = state.actions_started, state.actions_done
        counts.approvals, counts.workers_alive = len(approver.approved), sum(w.alive for w in fleet)
        progress.update(counts)
        if state.done:
            break
        if kill_one and not killed and state.accounted >= max(1, len(sent) // 3):
            victim = kill_target(clients, names["leases_table"], fleet)
            kill(victim)
            killed.append(victim.worker_id)
            # Read at once, before its leases expire: records past its checkpoints are work it never finished.
            held = unacknowledged(clients, names["leases_table"], names["stream_name"], victim.worker_id)
            progress.note(f"killed {victim.worker_id} (SIGKILL) with {state.accounted}/{len(sent)} accounted for "
                          f"and {held} records it held unacknowledged")
        if counts.workers_alive == 0:
            progress.note("every worker has exited; see the logs under " + str(logs_dir))
            break
        if time.monotonic() > deadline:
            progress.note(f"timed out after {timeout_s:.0f} s; the summary shows what is missing")
            break
        time.sleep(2.0)  # each poll scans the audit table; the emulator shares the CPU with the workers
    progress.finish(counts)
    return killed, held
