"""Helpers for runtime tests: per-test fleet resources in the emulator, events, polling, workers on threads."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.act.audit import list_kind
from agentfleet.entrypoints.worker import Worker
from agentfleet.local.resources import ResourceNames, Resources, config_document
from agentfleet.spec.catalog import parse_agents
from agentfleet.spec.settings import Settings, resolve
from agentfleet.spec.tables import KIND_DECISION, KIND_QUARANTINE
from agentfleet.spec.targets import parse_targets

ROOT = Path(__file__).resolve().parents[2]
COUNTER = itertools.count()

def cdk_targets() -> dict[str, Any]:
    """The default fleet's targets as the runtime document carries them (all disabled in cdk.json)."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {t.name: t.runtime_json() for t in parse_targets(context["targets"])}


# Agents for tests that script the model: small rate limits and approval where a test needs them.
TEST_AGENTS = parse_agents(targets=list(cdk_targets()), raw=[
    {"name": "triage", "system_prompt": "You triage CI results.", "subscribes_to": ["ci.*"],
     "allowed_actions": ["notify", "open_ticket", "ignore"], "rate_limit_per_minute": 600,
     "approval_required": ["open_ticket"]},
    {"name": "watcher", "system_prompt": "You watch alarms.", "subscribes_to": ["cloudwatch.alarm", "ci.failed"],
     "allowed_actions": ["notify", "ignore"], "rate_limit_per_minute": 600},
    {"name": "limited", "system_prompt": "You act rarely.", "subscribes_to": ["rare.event"],
     "allowed_actions": ["notify", "ignore"], "rate_limit_per_minute": 1},
])


def cdk_agents() -> Any:
    """The default fleet's agents from cdk.json (what a real deployment runs)."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return parse_agents(context["agents"], targets=list(cdk_targets()))


def event(type_: str, subject: str, payload: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    doc = {"spec_version": "1.0", "id": fields.pop("id", f"evt-{uuid.uuid4().hex[:12]}"), "type": type_,
           "subject": subject, "time": "2025-01-01T12:00:00Z", "source": "tests", "payload": payload or {}}
    doc.update(fields)
    return doc


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_count(fetch: Callable[[], list[Any]], count: int, timeout: float, what: str) -> list[Any]:
    """Poll `fetch` until it returns at least `count` items; returns them."""
    found: list[Any] = []

    def enough() -> bool:
        found[:] = fetch()
        return len(found) >= count

    wait_until(enough, timeout, f"{count} {what} (last saw {len(found)})")
    return found


@dataclass
class Fleet:
    """One test's resources plus the clients to inspect them."""

    resources: Resources
    agents: Any
    clients: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> ResourceNames:
        return self.resources.names

    def settings(self, **overrides: Any) -> Settings:
        values = {**self.resources.settings(), "agents": [a.to_json() for a in self.agents], "targets": cdk_targets(),
                  "worker_id": f"w{next(COUNTER)}", "lease_seconds": 3, "poll_interval_ms": 200,
                  "batch_max_wait_ms": 100, "metrics_mode": "off", "shutdown_deadline_seconds": 10,
                  # One torch thread: with more, OpenMP spin-waits make a busy shared CPU 10-30x slower.
                  "torch_threads": 1, **overrides}
        return resolve(explicit=values, env={})

    def document(self, **overrides: Any) -> dict[str, Any]:
        return config_document(self.resources, self.agents, lease_seconds=3, poll_interval_ms=200,
                               batch_max_wait_ms=100, metrics_mode="off", targets=cdk_targets(), **overrides)

    def put(self, records: list[dict[str, Any] | bytes], partition_key: str | None = None) -> list[dict[str, str]]:
        """Put records one by one (each its own partition key unless given); returns shard ids and sequences."""
        out = []
        for record in records:
            data = record if isinstance(record, bytes) else json.dumps(record).encode()
            key = partition_key or (record["subject"] if isinstance(record, dict) and "subject" in record
                                    else uuid.uuid4().hex)
            response = self.clients["kinesis"].put_record(StreamName=self.names.stream, Data=data, PartitionKey=key)
            out.append({"shard_id": response["ShardId"], "sequence_number": response["SequenceNumber"]})
        return out

    def audit(self, kind: str) -> list[dict[str, Any]]:
        return list_kind(self.clients["dynamodb"], self.names.audit_table, kind)

    def decisions(self) -> list[dict[str, Any]]:
        return self.audit(KIND_DECISION)

    def quarantined(self) -> list[dict[str, Any]]:
        return self.audit(KIND_QUARANTINE)

    def executions(self) -> list[dict[str, Any]]:
        sfn, out, kwargs = self.clients["stepfunctions"], [], {"stateMachineArn": self.resources.state_machine_arn}
        while True:
            page = sfn.list_executions(**kwargs)
            out += page["executions"]
            if not page.get("nextToken"):
                return out
            kwargs["nextToken"] = page["nextToken"]

    def leases(self) -> list[dict[str, Any]]:
        from agentfleet.ops.ddb import from_item

        items = self.clients["dynamodb"].scan(TableName=self.names.leases_table, ConsistentRead=True)["Items"]
        return [from_item(i) for i in items if not i["shard_id"]["S"].startswith(("worker#", "lock#"))]



class RunningWorker:
    """A Worker running `run()` on a thread, stoppable like a SIGTERM would."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name=f"worker-{worker.me}", daemon=True)

    def _run(self) -> None:
        try:
            self.result["code"] = self.worker.run()
        except BaseException as exc:  # a simulated crash escapes run(); remember it
            self.result["error"] = exc

    def start(self) -> RunningWorker:
        self.thread.start()
        return self

    def stop(self, timeout: float = 30) -> int:
        self.worker.stop.set("test")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        return int(self.result.get("code", -1))




def subprocess_env(emulator_env: dict[str, str], document_path: Path, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
    env.update(emulator_env)
    env["AGENTFLEET_CONFIG"] = str(document_path)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "agent_image"), env.get("PYTHONPATH", "")])
    for key, value in settings.items():
        env[f"AGENTFLEET_{key.upper()}"] = str(value)
    return env
