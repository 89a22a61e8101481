"""The fleet check's pure parts: report math (percentiles, rates, $/M tokens), the price reader, the
throughput file's format, synthetic event generation (each event decodes and validates as the workers
decode it) and the stream put's resend of refused entries."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentfleet.entrypoints import fleetcheck
from agentfleet.entrypoints import fleetcheck_events as ev
from agentfleet.entrypoints import fleetcheck_figures as fig
from agentfleet.ingest.adapters import decode
from agentfleet.spec.catalog import ConfigError, parse_agents
from agentfleet.spec.events import Event, validate_document

AGENTS = parse_agents([
    {"name": "triage", "system_prompt": "p", "subscribes_to": ["ci.*"], "allowed_actions": ["notify", "ignore"]},
    {"name": "watcher", "system_prompt": "p", "subscribes_to": ["ci.fleetcheck"], "allowed_actions": ["ignore"]},
    {"name": "alarms", "system_prompt": "p", "subscribes_to": ["cloudwatch.alarm"], "allowed_actions": ["ignore"]},
    {"name": "sec", "system_prompt": "p", "subscribes_to": ["security.*"], "allowed_actions": ["ignore"]},
], key="agents")
ROOT = Path(__file__).resolve().parents[2]


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert (fig.percentile(values, 50), fig.percentile(values, 99), fig.percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert fig.percentile([7.0, 1.0, 3.0], 50) == 3.0 and fig.percentile([5.0], 99) == 5.0
    assert fig.percentile([5.0, 4.0, 3.0, 2.0, 1.0], 50) == 3.0  # rank ceil(2.5) = 3, the median
    assert fig.percentile([float(v) for v in range(1, 11)], 95) == 10.0  # rank ceil(9.5) = 10
    assert fig.percentile([], 50) is None
    with pytest.raises(ValueError):
        fig.percentile([1.0], 0)


def test_dollars_per_million_tokens() -> None:
    # 1000 tokens/s per instance = 3.6 M tokens per hour; at $36/h that is $10 per million.
    assert fig.dollars_per_million_tokens(36.0, 1000.0) == pytest.approx(10.0)
    assert fig.dollars_per_million_tokens(None, 1000.0) is None
    assert fig.dollars_per_million_tokens(36.0, 0.0) is None


def test_measure_and_report_from_decisions() -> None:
    put_at = {"e1": 1_700_000_000.0, "e2": 1_700_000_001.0}
    decisions = [  # 1.0 s and 3.0 s after their puts; the window is first put -> last decision = 4 s
        {"event_ids": ["e1"], "at": "2023-11-14T22:13:21.000Z", "prompt_tokens": 300, "completion_tokens": 100,
         "outcome": "acted"},
        {"event_ids": ["e2"], "at": "2023-11-14T22:13:24.000Z", "prompt_tokens": 500, "completion_tokens": 100,
         "outcome": "ignored"},
    ]
    measured = fig.measure(put_at, decisions, instances=2)
    assert measured.window_s == pytest.approx(4.0) and measured.tokens == 1000
    assert sorted(measured.latencies_ms) == pytest.approx([1000.0, 3000.0])
    r = fig.report(measured, price_per_hour=36.0, outcomes=Counter(d["outcome"] for d in decisions))
    assert r["tokens_per_second"] == 250.0 and r["tokens_per_second_per_instance"] == 125.0
    assert r["decisions_per_second"] == 0.5 and r["decisions_per_second_per_instance"] == 0.25
    assert r["latency_ms"] == {"p50": 1000.0, "p99": 3000.0}
    assert r["dollars_per_million_tokens"] == pytest.approx(36.0 / (125.0 * 3600) * 1e6, rel=1e-4)
    assert r["decisions_by_outcome"] == {"acted": 1, "ignored": 1}
    assert fig.report(fig.measure(put_at, [], 2), price_per_hour=36.0, outcomes=Counter())["tokens_per_second"] == 0.0


def test_throughput_file_format_is_what_make_cost_reads() -> None:
    figures = {"tokens_per_second_per_instance": 812.5, "decisions_per_second_per_instance": 2.25}
    doc = fig.throughput_file("trn2.48xlarge", figures, "fleetcheck 2026-12-01 agentfleet-fleet")
    assert doc == {"trn2.48xlarge": {"tokens_per_second": 812.5, "decisions_per_second": 2.25,
                                     "source": "fleetcheck 2026-12-01 agentfleet-fleet"}}


def test_hourly_price_comes_from_the_price_table(tmp_path: Path) -> None:
    price, where = fig.read_hourly_price(ROOT / "stacks" / "prices.json", "trn2.48xlarge")
    assert price == 35.76 and "ec2/on-demand/trn2.48xlarge" in where
    assert fig.read_hourly_price(ROOT / "stacks" / "prices.json", "trn3.48xlarge")[0] is None  # a known gap
    assert fig.read_hourly_price(ROOT / "stacks" / "prices.json", "x9.nano") == (
        None, f"{ROOT / 'stacks' / 'prices.json'} has no row ec2/on-demand/x9.nano")
    assert fleetcheck.SHIPPED_PRICES == ROOT / "stacks" / "prices.json"


def test_events_are_valid_cloudevents_spread_over_agents_and_subjects() -> None:
    events = ev.synthetic_events(AGENTS, 12, "run1", subjects=3, now=lambda: 1_700_000_000.0)
    assert len({e["id"] for e in events}) == 12 and len({e["subject"] for e in events}) == 3
    assert [e["type"] for e in events[:4]] == ["ci.fleetcheck", "ci.fleetcheck", "cloudwatch.alarm",
                                               "security.fleetcheck"]
    for e in events:
        decoded = decode(json.dumps(e).encode(), arrival_time="2023-11-14T22:13:20.000Z", max_record_bytes=1 << 20)
        assert isinstance(decoded, Event) and decoded.id == e["id"] and decoded.type == e["type"]
        assert isinstance(validate_document({**decoded.to_json()}), Event)
    pairs = ev.expected_pairs(AGENTS, events[:4])
    assert pairs == {(events[0]["id"], "triage"), (events[0]["id"], "watcher"), (events[1]["id"], "triage"),
                     (events[1]["id"], "watcher"), (events[2]["id"], "alarms"), (events[3]["id"], "sec")}
    assert ev.concrete_type("*") == "fleetcheck.synthetic"  # AgentSpec.subscribes honours a bare "*"


def test_no_agents_or_no_events_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no agents"):
        ev.synthetic_events((), 5, "r")
    with pytest.raises(ConfigError, match="--events"):
        ev.synthetic_events(AGENTS, 0, "r")


class RefusingKinesis:
    """Refuses the first entry of each call once, as a throttled shard does (ErrorCode per entry)."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        out = [{"SequenceNumber": f"{len(self.calls)}-{i}", "ShardId": "shardId-000000000000"} for i in range(len(Records))]
        if len(self.calls) == 1:
            out[0] = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
        return {"FailedRecordCount": int(len(self.calls) == 1), "Records": out}


def test_put_resends_refused_entries_and_keys_by_subject() -> None:
    events = ev.synthetic_events(AGENTS, 3, "r")
    kinesis = RefusingKinesis()
    sent = ev.put_events(kinesis, "s", events, clock=lambda: 5.0, sleep=lambda _: None)
    assert sorted(s.event_id for s in sent) == sorted(e["id"] for e in events)
    assert len(kinesis.calls) == 2 and len(kinesis.calls[1]) == 1
    assert json.loads(kinesis.calls[1][0]["Data"])["id"] == events[0]["id"]
    assert all(r["PartitionKey"] == json.loads(r["Data"])["subject"] for r in kinesis.calls[0])


@pytest.mark.parametrize(("argv", "words"), [(["--events", "0"], "--events"), (["--timeout", "0"], "--timeout"),
                                             (["--price-per-hour", "-1"], "--price-per-hour")])
def test_bad_flags_are_refused(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fleetcheck.parse_args(argv)
    assert words in capsys.readouterr().err


def test_stack_prefix_is_the_fleet_name() -> None:
    assert fleetcheck.parse_args(["--stack-prefix", "team-a"]).fleet_name == "team-a"


def test_the_printed_table_says_what_is_missing() -> None:
    measured = fig.measure({"e1": 1_700_000_000.0}, [{"event_ids": ["e1"], "at": "2023-11-14T22:13:22.000Z",
                                                       "prompt_tokens": 90, "completion_tokens": 10}], instances=1)
    doc = {"fleet_name": "agentfleet", "region": "us-east-2", "events_sent": 1, "pairs_decided": 1, "pairs_expected": 2,
           "missing_pairs": ["e1 watcher"], "instances_source": "Auto Scaling InService", "instance_type": "trn3.48xlarge",
           "price_note": "no published price", "figures": fig.report(measured, price_per_hour=None, outcomes=Counter()),
           "boot": {"hours": 24, "boot_to_ready_s": {"boots": 0, "average": None, "maximum": None},
                    "compile_cache_hits": 0, "compile_cache_misses": 0}}
    text = fig.table(doc)
    assert "1/2 (event, agent) pairs decided, 1 missing" in text
    assert "50.0 (50.0 per instance, prompt + completion)" in text  # 100 tokens over 2 s
    assert "p50 2000.0 ms, p99 2000.0 ms" in text
    assert "n/a: no published price" in text and "over 0 boots" in text
