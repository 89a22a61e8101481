"""Fixtures for the model-side tests: the small local model, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentfleet.serve.model.cpu import TransformersBackend
from agentfleet.serve.model.tiny import build_local_model
from agentfleet.spec.settings import Settings

# The CI box is shared; one intra-op thread keeps these tests from fighting each other.
torch.set_num_threads(1)


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "torch_threads": 1, "batch_size": 8, "max_new_tokens": 96, "sequence_length": 1024, "worker_id": "test",
    }
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_local_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def backend(tiny_dir: Path) -> TransformersBackend:
    return TransformersBackend.from_dir(tiny_dir, settings())
