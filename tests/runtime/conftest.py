"""Fixtures for runtime tests: a fresh set of fleet resources per test in an IAM-enforced emulator,
workers on threads (stopped at teardown) running as an IAM user that carries exactly the instance
role's policies from the synthesized templates, and the real tiny CPU model (built once per session).

Test setup and inspection use the emulator's admin user (`fleet.clients`, created before the worker
key is put into the environment); anything that builds clients later (`Clients.create`, `client()`)
and worker subprocesses started with `aws_env.env()` get the worker's key. A call the emulator
refuses with that key fails the test at teardown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints.worker import Worker
from agentfleet.local import emulator as emulator_mod
from agentfleet.local import iam
from agentfleet.local.resources import ResourceNames, create_resources
from agentfleet.ops.aws import client
from tests.runtime.support import COUNTER, TEST_AGENTS, Fleet, RunningWorker


class EmulatorAsWorker:
    """The emulator as a runtime test sees it: `env()` carries the key this process uses now -- the
    worker's once `fleet` has run -- so worker subprocesses started from it run under the policy too."""

    def __init__(self, emulator: emulator_mod.Emulator) -> None:
        self.emulator = emulator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.emulator, name)

    def env(self) -> dict[str, str]:
        keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        return {**self.emulator.env(), **{k: os.environ[k] for k in keys if k in os.environ}}


@pytest.fixture
def aws_env(iam_emulator: emulator_mod.Emulator, monkeypatch: pytest.MonkeyPatch) -> EmulatorAsWorker:
    """Runtime tests talk to the IAM-enforced emulator, as its admin until `fleet` hands over."""
    for key, value in iam_emulator.env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    return EmulatorAsWorker(iam_emulator)


@pytest.fixture(scope="session")
def worker_role(app_assembly: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]], iam.WorkerPolicies]:
    """The synthesized templates, their construct paths and the instance role's policies."""
    templates = iam.templates(app_assembly)
    return templates, iam.construct_paths(app_assembly), iam.worker_policies(templates)


@pytest.fixture
def fleet(aws_env: EmulatorAsWorker, request: pytest.FixtureRequest, worker_role: Any,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """Resources under a fresh prefix (4 shards unless parametrized indirectly with a count), and the
    worker's IAM user in the environment from here on."""
    prefix = f"rt{next(COUNTER)}-{uuid.uuid4().hex[:6]}"
    resources = create_resources(ResourceNames.for_prefix(prefix), shard_count=getattr(request, "param", 4))
    clients = {name: client(name) for name in ("kinesis", "dynamodb", "stepfunctions")}
    templates, paths, policies = worker_role
    physical = iam.physical_from_paths(templates, paths, resources.by_construct_path())
    resolved = iam.resolve(policies, iam.resolvers_for(templates, physical))
    identity, _ = iam.create_worker(client("iam"), f"{prefix}-worker", resolved)
    for key, value in identity.env().items():
        monkeypatch.setenv(key, value)
    yield Fleet(resources, TEST_AGENTS, clients)
    refused = [d for d in aws_env.denied() if identity.access_key_id in d.get("authorization", "")]
    assert not refused, f"the emulator refused the worker's calls under the synthesized policy: {refused}"


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
