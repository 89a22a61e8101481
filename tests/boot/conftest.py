"""Boot test fixtures: a fresh bucket and leases table in the emulator."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path: the boot
# tests share their doubles through this one entry.
sys.path.insert(0, str(Path(__file__).parent))

from boot_fakes import BootAws

from agentfleet.spec import tables


@pytest.fixture(scope="session")
def _boot_resources(emulator: Any) -> tuple[Any, Any, str]:
    """One bucket and one leases table (the real key schema) for the whole boot suite; tests stay
    apart because each BootAws uses its own model revision, hence its own cache keys and lock items."""
    name = f"boot-{uuid.uuid4().hex[:10]}"
    kwargs = {"endpoint_url": emulator.endpoint, "region_name": "us-east-1",
              "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    # Clients made once: building a boto3 client costs ~1 s of CPU on a loaded 2-core machine.
    s3, ddb = boto3.client("s3", **kwargs), boto3.client("dynamodb", **kwargs)
    s3.create_bucket(Bucket=name)
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": tables.LEASES_PK, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": tables.LEASES_PK, "AttributeType": "S"}],
    )
    return s3, ddb, name


@pytest.fixture
def boot_aws(_boot_resources: tuple[Any, Any, str]) -> BootAws:
    s3, ddb, name = _boot_resources
    return BootAws(s3, ddb, name, name, revision=uuid.uuid4().hex[:12])


FAKE_BIN = Path(__file__).parent / "fake_bin"


@pytest.fixture
def neuron_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fake `vllm`, `neuron-ls` and `neuron-monitor` (tests/boot/fake_bin) first on PATH, run by
    this interpreter; returns their shared state folder (who holds the fake NeuronCores, call logs)."""
    import os

    state, python_dir = tmp_path / "neuron-state", tmp_path / "python-bin"
    state.mkdir()
    python_dir.mkdir()
    (python_dir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE_BIN), str(python_dir), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_NEURON_STATE", str(state))
    yield state
    _stop_leftover_servers(state)


def _stop_leftover_servers(state: Path) -> None:
    """A failing test may leave a fake server running; stop the ones this test started, by pid."""
    import json
    import os
    import signal

    calls = state / "vllm_calls.jsonl"
    if not calls.exists():
        return
    for line in calls.read_text().splitlines():
        pid = int(json.loads(line)["pid"])
        try:
            if "fake_bin" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                continue  # gone, and the pid now belongs to something else
            os.killpg(pid, signal.SIGKILL)  # each fake server leads its own process group
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
