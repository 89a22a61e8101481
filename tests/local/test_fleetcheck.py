"""The fleet check against the local fleet: the emulator with the app deployed and one worker process,
driven by `agentfleet.entrypoints.fleetcheck.main` with --endpoint-url exactly as against an account.

One run (~2 min on a shared CPU): the fleet check sends 10 events once the worker is healthy (the
local fleet's on_ready hook), then the fleet replays one scenario event and proves its invariants over
everything on the stream, the check's events included. Plus the boot-metric reader against the
emulator's CloudWatch, fed by the runtime's own emitter (ops.metrics in put mode).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints import fleetcheck
from agentfleet.entrypoints.fleetcheck_aws import boot_metrics
from agentfleet.local import fleet
from agentfleet.local.emulator import Emulator
from agentfleet.ops.aws import client
from agentfleet.ops.metrics import Metrics
from agentfleet.spec import metric_names

EVENTS = 10


@pytest.fixture(scope="module")
def checked(app_assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fleetcheck")
    result: dict[str, Any] = {}

    def check(endpoint: str) -> None:
        result["exit"] = fleetcheck.main([
            "--endpoint-url", endpoint, "--events", str(EVENTS), "--timeout", "360", "--out", str(out / "check"),
            # one worker process is the local fleet's one "instance"; priced as a trn2.48xlarge hour
            "--instances", "1", "--instance-type", "trn2.48xlarge"])

    opts = fleet.Options(workers=1, events=1, scenario="ci-day", out=out / "run", assembly=app_assembly, timeout_s=300,
                         on_ready=check)
    result["summary"] = fleet.run(opts)
    result["report"] = json.loads((out / "check" / "report.json").read_text())
    result["throughput_path"] = out / "check" / "throughput.json"
    return result


@pytest.mark.integration
@pytest.mark.slow
def test_every_sent_event_is_decided_by_its_agents(checked: dict[str, Any]) -> None:
    r = checked["report"]
    assert checked["exit"] == 0
    assert r["events_sent"] == EVENTS
    assert r["pairs_expected"] >= EVENTS and r["pairs_decided"] == r["pairs_expected"]
    assert r["missing_pairs"] == []
    assert r["config"].startswith("ssm:") and r["stack"] == "agentfleet-fleet"  # found through DescribeStacks
    assert checked["summary"]["lost_events"] == 0  # the fleet's own invariants, the check's events included
    assert checked["summary"]["events_decided"] == EVENTS + 1


@pytest.mark.integration
@pytest.mark.slow
def test_figures_are_measured_and_positive(checked: dict[str, Any]) -> None:
    f = checked["report"]["figures"]
    assert f["decisions"] == checked["report"]["pairs_decided"]
    assert f["tokens"] > 0 and f["window_s"] > 0 and f["instances"] == 1
    assert f["decisions_per_second"] > 0 and f["tokens_per_second_per_instance"] > 0
    assert 0 < f["latency_ms"]["p50"] <= f["latency_ms"]["p99"]
    assert f["price_per_hour"] == 35.76  # stacks/prices.json's trn2.48xlarge row
    assert f["dollars_per_million_tokens"] == pytest.approx(
        35.76 / (f["tokens_per_second_per_instance"] * 3600) * 1e6, rel=1e-3)
    assert checked["report"]["auto_scaling"]["group"]  # the deployed group was asked, whatever it holds


@pytest.mark.integration
@pytest.mark.slow
def test_the_throughput_file_is_written_in_the_agreed_format(checked: dict[str, Any]) -> None:
    doc = json.loads(checked["throughput_path"].read_text())
    assert list(doc) == ["trn2.48xlarge"]
    row = doc["trn2.48xlarge"]
    assert set(row) == {"tokens_per_second", "decisions_per_second", "source"}
    assert row["tokens_per_second"] == checked["report"]["figures"]["tokens_per_second_per_instance"] > 0
    assert row["decisions_per_second"] > 0
    assert row["source"].startswith("fleetcheck 20") and "agentfleet-fleet" in row["source"]


@pytest.mark.integration
def test_boot_metrics_are_read_from_cloudwatch(aws_env: Emulator) -> None:
    cloudwatch = client("cloudwatch")
    emitter = Metrics("fc-boot", "put", cloudwatch=cloudwatch)
    for seconds in (120.0, 300.0, 600.0):
        emitter.observe(metric_names.BOOT_TO_READY_SECONDS, seconds, "Seconds")
    emitter.count(metric_names.COMPILE_CACHE_HITS, 2)
    emitter.count(metric_names.COMPILE_CACHE_MISSES)
    emitter.flush()
    other = Metrics("fc-other-fleet", "put", cloudwatch=cloudwatch)
    other.count(metric_names.COMPILE_CACHE_HITS, 5)
    other.flush()
    got = boot_metrics(cloudwatch, "fc-boot", end=datetime.now(UTC))
    assert got["boot_to_ready_s"] == {"boots": 3, "average": 340.0, "maximum": 600.0}
    assert (got["compile_cache_hits"], got["compile_cache_misses"]) == (2, 1)
    assert boot_metrics(cloudwatch, "fc-nothing", end=datetime.now(UTC))["boot_to_ready_s"]["boots"] == 0


@pytest.mark.integration
def test_a_fleet_that_is_not_deployed_is_a_clear_error(aws_env: Emulator, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = fleetcheck.main(["--endpoint-url", aws_env.endpoint, "--fleet-name", "not-deployed", "--events", "1",
                            "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "--fleet-name 'not-deployed'" in err and "not-deployed-fleet" in err
    assert not (tmp_path / "report.json").exists()
