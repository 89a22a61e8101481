"""The local fleet end to end: emulator, deployed app, worker processes, replay, and the emulator's own records.

Two runs (each ~1.5 min on a shared CPU): a small mixed scenario (good events plus one record
of each malformed kind) with 2 workers, and a small clean scenario with 3 workers and one
SIGKILLed mid-run. Every number asserted comes from the emulator (stream, audit table,
executions), via the summary the run writes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from agentfleet.local import fleet, scenarios

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GOOD_EVENTS = 25


def _mixed_scenario(path: Path) -> Path:
    """25 events of the CI day with one bad record of each kind spread among them."""
    lines = scenarios.ci_day()[:GOOD_EVENTS]
    rng = random.Random(3)
    for i, kind in enumerate(scenarios.MALFORMED_KINDS):
        lines.insert(4 + i * 5, scenarios.malformed(kind, f"test-bad-{i}", rng))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="module")
def mixed_run(app_assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mixed")
    opts = fleet.Options(workers=2, scenario=str(_mixed_scenario(out / "mixed.jsonl")), out=out / "run",
                         assembly=app_assembly, timeout_s=420)
    summary = fleet.run(opts)
    assert json.loads((out / "run" / "summary.json").read_text())["events_sent"] == summary["events_sent"]
    return summary


def test_every_event_is_decided_and_every_action_succeeds(mixed_run: dict[str, Any]) -> None:
    s = mixed_run
    assert s["events_sent"] == s["stream_records"] == GOOD_EVENTS + len(scenarios.MALFORMED_KINDS)
    assert s["events_decided"] == GOOD_EVENTS
    assert s["lost_events"] == 0 and s["duplicate_actions"] == 0 and s["missing_actions"] == 0
    assert s["actions_started"] > 0
    assert s["actions_succeeded"] == s["actions_started"]  # SUCCEEDED in the emulator's Step Functions
    assert sum(s["action_outcomes"].values()) == s["actions_started"]  # each wrote its outcome record
    assert s["approvals_answered"] == s["approvals_requested"]
    assert s["memory_items"] > 0  # agents' memory in DynamoDB was written
    assert set(s["worker_exit_codes"].values()) == {0}  # SIGTERM drained cleanly


def test_each_malformed_kind_is_quarantined_with_its_reason(mixed_run: dict[str, Any]) -> None:
    assert mixed_run["quarantined"] == {kind: 1 for kind in scenarios.MALFORMED_KINDS}


def test_latency_and_throughput_come_from_the_records(mixed_run: dict[str, Any]) -> None:
    assert 0 < mixed_run["latency_ms"]["p50"] <= mixed_run["latency_ms"]["p99"]
    assert mixed_run["tokens_per_s"] > 0 and mixed_run["generated_tokens"] > 0
    assert len(mixed_run["series"]["latency_ms"]) == mixed_run["decisions"]


def test_killing_a_worker_loses_nothing_and_acts_once(app_assembly: Path, tmp_path: Path) -> None:
    opts = fleet.Options(workers=3, scenario="ci-day", events=36, kill_one=True, out=tmp_path / "run",
                         assembly=app_assembly, timeout_s=420)
    s = fleet.run(opts)
    assert len(s["killed_workers"]) == 1
    assert s["killed_unacknowledged_records"] > 0  # the kill interrupted real work
    assert s["events_decided"] == s["events_sent"] == 36
    assert s["lost_events"] == 0
    assert s["duplicate_actions"] == 0
    assert s["missing_actions"] == 0 and s["actions_running"] == 0
    assert s["actions_succeeded"] == s["actions_started"] > 0
    assert (tmp_path / "run" / "summary.png").stat().st_size > 0
