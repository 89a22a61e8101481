"""The baseline: today's stop-and-go batching, kept here after the runtime drops it.

Reproduces agentfleet/decide/batcher.py and the worker's batch thread as of commit cfb21dc: take up
to `batch_size` waiting items (two items of one agent and subject never share a batch and a later
one never overtakes an earlier one), send them together, wait for all of them, then do each item's
post-decision I/O (parse, guardrails, audit write-ahead, action start, memory write), and only
then take the next batch. The pipeline and its AWS fakes are the runtime's own
(decide/pipeline.DecisionPipeline over bench.fakes), so the baseline differs from the current
worker only in how work is fed to the model.
"""

from __future__ import annotations

import os
import time
from typing import Any

from agentfleet.act.audit import AuditLog
from agentfleet.act.dispatch import Dispatcher, decision_id
from agentfleet.decide.guardrails import Guardrails
from agentfleet.decide.memory import MemoryStore
from agentfleet.decide.pipeline import Completion, DecisionPipeline
from agentfleet.decide.scheduler import WorkItem
from agentfleet.ops.metrics import Metrics
from agentfleet.serve.model.base import ModelBackend
from agentfleet.spec.catalog import AgentSpec, subscribers
from agentfleet.spec.events import Rejection, parse_record
from agentfleet.spec.settings import Settings
from bench.fakes import FakeDynamoDB, FakeStepFunctions


def select(queue: list[WorkItem], batch_size: int) -> list[WorkItem]:
    """decide/batcher.Batcher._select (cfb21dc) without retry delays: the next batch, in order."""
    chosen: list[WorkItem] = []
    blocked: set[tuple[str, str]] = set()
    for item in queue:
        if item.key in blocked:
            continue
        blocked.add(item.key)
        chosen.append(item)
        if len(chosen) == batch_size:
            break
    return chosen


def work_items(records: list[tuple[str, bytes]], agents: tuple[AgentSpec, ...], settings: Settings) -> list[WorkItem]:
    """One item per (valid record, subscribed agent), as ingest/shards.py makes them (one shard)."""
    items: list[WorkItem] = []
    now = time.monotonic()
    for index, (key, data) in enumerate(records):
        event = parse_record(data, settings.max_record_bytes)
        if isinstance(event, Rejection):
            continue
        seq = str(index)
        items.extend(WorkItem("shardId-000000000000", seq, event, agent, decision_id(agent.name, "shardId-000000000000",
                                                                                  seq, None), now, raw=data,
                          partition_key=key) for agent in subscribers(agents, event.type))
    return items


def pipeline(settings: Settings, backend: ModelBackend) -> DecisionPipeline:
    """The runtime's pipeline over fresh in-process fakes (the audit table keeps keys only)."""
    ddb, sfn = FakeDynamoDB(keys_only=[settings.audit_table]), FakeStepFunctions()
    return DecisionPipeline(
        backend=backend, audit=AuditLog(ddb, settings.audit_table),
        memory=MemoryStore(ddb, settings.memory_table, max_items=settings.memory_max_items,
                           ttl_days=settings.memory_ttl_days),
        dispatcher=Dispatcher(sfn, settings.state_machine_arn), guardrails=Guardrails(settings.agents, dry_run=False),
        metrics=Metrics(settings.fleet_name, "emf", stream=open(os.devnull, "w")), worker_id="bench-stop-and-go")


def decide_batch(decide: DecisionPipeline, batch: list[WorkItem], done: list[WorkItem]) -> None:
    """One stop-and-go round: one generate for the batch, wait for all, then each item's I/O.

    DecisionPipeline.run as of cfb21dc, rebuilt from the per-item steps in the same order: every
    item's memory load and prompt, one batched generate, then parse/guardrails/audit/action/memory
    item by item.
    """
    prepared = [(item, *decide.prepare(item)) for item in batch]
    result = decide.backend.generate([request for _, _, request in prepared])
    for index, (item, memory, _) in enumerate(prepared):
        completion = Completion(result.texts[index], result.prompt_tokens[index], result.completion_tokens[index],
                                result.latency_ms)
        if not decide.finish(item, memory, completion):
            raise RuntimeError(f"item {item.decision_id} failed in the stop-and-go pipeline; see the log")
        done.append(item)


def run(records: list[tuple[str, bytes]], settings: Settings, backend: ModelBackend, *, batch_size: int = 8,
        seconds: float = 30.0) -> dict[str, Any]:
    """Stop-and-go over the backlog for `seconds` (the batch in flight is finished); decisions and wall time."""
    decide, queue = pipeline(settings, backend), work_items(records, settings.agents, settings)
    done: list[WorkItem] = []
    total, batches = len(queue), 0
    started = time.perf_counter()
    while queue and time.perf_counter() - started < seconds:
        batch = select(queue, batch_size)
        taken = {id(item) for item in batch}
        queue = [item for item in queue if id(item) not in taken]
        decide_batch(decide, batch, done)
        batches += 1
    wall = time.perf_counter() - started
    return {"items": total, "decisions": len(done), "batches": batches, "wall_s": round(wall, 2),
            "decisions_per_s": len(done) / wall if wall else 0.0, "backlog_left": len(queue)}
