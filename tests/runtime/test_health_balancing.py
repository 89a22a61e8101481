"""A worker whose lease balancing keeps failing (AccessDenied on ListShards, as with a policy
that misses an action) turns /ping unhealthy and counts LeaseBalancingFailures; it recovers
once balancing works again. LeasedShards is a per-worker gauge (issue 12, IAM section)."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from agentfleet.entrypoints.worker import BALANCE_FAILURES_UNHEALTHY, Clients, Worker
from agentfleet.ops.health import HealthServer
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names
from tests.runtime.fakes import ScriptedBackend
from tests.runtime.support import Fleet, wait_until

pytestmark = pytest.mark.integration


class DenyingKinesis:
    """The real client, except ListShards answers AccessDenied while `deny` is set."""

    def __init__(self, real: Any) -> None:
        self._real, self.deny, self.denied = real, True, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def list_shards(self, **kwargs: Any) -> Any:
        if self.deny:
            self.denied += 1
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "ListShards")
        return self._real.list_shards(**kwargs)


def _ping(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
            return response.status, json.loads(response.read())["status"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["status"]


def test_failing_lease_balancing_turns_ping_unhealthy_and_emits_a_metric(fleet: Fleet, running: Any) -> None:
    kinesis = DenyingKinesis(fleet.clients["kinesis"])
    clients = Clients(kinesis, fleet.clients["dynamodb"], fleet.clients["stepfunctions"])
    health = HealthServer(0, host="127.0.0.1", state="healthy").start()
    out = io.StringIO()
    metrics = Metrics("test", "emf", stream=out, flush_seconds=0.0)
    try:
        handle = running(Worker(fleet.settings(), ScriptedBackend(), clients=clients, health=health, metrics=metrics))
        wait_until(lambda: _ping(health.port) == (503, "unhealthy"), 30, "/ping unhealthy")
        assert kinesis.denied >= BALANCE_FAILURES_UNHEALTHY
        assert handle.worker.leases.held == {}, "no shard can be leased without ListShards"
        kinesis.deny = False
        wait_until(lambda: _ping(health.port) == (200, "healthy"), 30, "/ping healthy again")
        wait_until(lambda: handle.worker.leases.held, 30, "shards leased")
        assert handle.stop() == 0
    finally:
        health.stop()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    failures = sum(line.get(metric_names.LEASE_BALANCING_FAILURES, 0) for line in lines)
    assert failures >= BALANCE_FAILURES_UNHEALTHY
    leased = [line[metric_names.LEASED_SHARDS] for line in lines if metric_names.LEASED_SHARDS in line]
    assert leased and leased[0] == 0, "the first LeasedShards gauge, before any lease, reads 0"
