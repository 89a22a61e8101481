"""Fixtures for the local-fleet tests: the app synthesized once per session, and a private emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfleet.local import deploy, emulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def app_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python app.py` into a temporary cdk.out (what `make demo` deploys)."""
    if not (ROOT / "app.py").exists():
        pytest.skip("the CDK app (app.py) is not there yet")
    return deploy.synth(tmp_path_factory.mktemp("app") / "cdk.out")


@pytest.fixture(scope="module")
def private_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulator.Emulator]:
    """An emulator of this module's own (deploys fixed stack names; the shared one stays untouched),
    with this process's boto3 pointed at it for the module."""
    emu = emulator.start(log_path=str(tmp_path_factory.mktemp("moto") / "moto.log"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emu.env().items():
            patch.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        yield emu
    emu.stop()
