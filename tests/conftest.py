"""Shared fixtures: the embedded emulator (moto server on loopback, one per test session), an
IAM-enforced one for the runtime integration tests, and the app synthesized once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
for path in (ROOT, ROOT / "agent_image"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from agentfleet.local import emulator as emulator_mod  # noqa: E402


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulator_mod.Emulator]:
    """A moto server process for the whole session; tests isolate themselves by resource names
    or call `emulator.reset()`."""
    log = tmp_path_factory.mktemp("emulator") / "moto.log"
    emu = emulator_mod.start(log_path=str(log))
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def iam_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulator_mod.Emulator]:
    """A moto server that enforces IAM: `env()` is its admin user; workers get their own users
    (agentfleet.local.iam) and every refused call is in `denied()`."""
    log = tmp_path_factory.mktemp("iam-emulator") / "moto.log"
    emu = emulator_mod.start(log_path=str(log), iam=True)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def app_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python app.py` into a temporary cdk.out: the templates whose policies the workers run under."""
    from agentfleet.local import deploy

    return deploy.synth(tmp_path_factory.mktemp("app") / "cdk.out")


@pytest.fixture
def aws_env(emulator: emulator_mod.Emulator, monkeypatch: pytest.MonkeyPatch) -> emulator_mod.Emulator:
    """Point boto3 in this process at the emulator with fake credentials."""
    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    return emulator
