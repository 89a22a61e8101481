"""Fixtures for runtime tests: a fresh set of fleet resources in the emulator per test, workers on
threads stopped at teardown, and the real tiny CPU model (built once per session)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.local.resources import ResourceNames, create_resources
from agentfleet.ops.aws import client
from tests.runtime.support import COUNTER, TEST_AGENTS, Fleet, RunningWorker


@pytest.fixture
def fleet(aws_env: Any, request: pytest.FixtureRequest) -> Fleet:
    """Resources under a fresh prefix (4 shards unless parametrized indirectly with a count)."""
    prefix = f"rt{next(COUNTER)}-{uuid.uuid4().hex[:6]}"
    resources = create_resources(ResourceNames.for_prefix(prefix), shard_count=getattr(request, "param", 4))
    clients = {name: client(name) for name in ("kinesis", "dynamodb", "stepfunctions")}
    return Fleet(resources, TEST_AGENTS, clients)


@pytest.fixture
def running() -> Iterator[Callable[[Worker], RunningWorker]]:
    started: list[RunningWorker] = []

    def start(worker: Worker) -> RunningWorker:
        started.append(RunningWorker(worker).start())
        return started[-1]

    yield start
    for item in started:
        if item.thread.is_alive():
            item.worker.stop.set("test teardown")
            item.thread.join(30)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real small CPU model, built once (a seeded Llama + tokenizer trained in code)."""
    from agentfleet.serve.model.tiny import build_local_model

    return build_local_model(tmp_path_factory.mktemp("model") / "tiny")
