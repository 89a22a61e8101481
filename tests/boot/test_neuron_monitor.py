"""neuron-monitor JSON -> NeuronCoreUtilization and NeuronDeviceMemoryUsed.

The report in data/ follows the format in the Neuron Monitor User Guide (neuron_runtime_data[]
.report.neuroncore_counters / memory_used, system_data, instance_info), two runtimes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from boot_fakes import emitted, memory_metrics

from agentfleet.serve.boot.neuron_monitor import consume, parse_report

SAMPLE = Path(__file__).parent / "data" / "neuron_monitor_report.json"


def test_parses_the_recorded_report() -> None:
    sample = parse_report(json.loads(SAMPLE.read_text()))
    assert sample.core_utilization == {"4711:0": 42.01, "4711:1": 57.5, "4712:2": 0.0}
    assert sample.device_memory_bytes == 2_500_000
    assert sample.errors == ()


def test_reported_errors_and_missing_groups() -> None:
    doc = {"neuron_runtime_data": [{"pid": 1, "error": "runtime gone", "report": {
        "neuroncore_counters": {"error": "permission denied", "neuroncores_in_use": {}}}}]}
    sample = parse_report(doc)
    assert sample.core_utilization == {} and sample.device_memory_bytes == 0
    assert sample.errors == ("runtime gone", "neuroncore_counters: permission denied")
    with pytest.raises(ValueError):
        parse_report({"neuron_runtime_data": {"not": "a list"}})


def test_consume_publishes_metrics_and_skips_bad_lines() -> None:
    metrics = memory_metrics()
    lines = ["", "{not json", SAMPLE.read_text(), json.dumps([1, 2])]
    assert consume(lines, metrics) == 1
    out = [json.loads(line) for line in emitted(metrics).splitlines()]
    merged = {k: v for line in out for k, v in line.items() if not k.startswith("_")}
    assert sorted(merged["NeuronCoreUtilization"]) == [0.0, 42.01, 57.5]
    assert merged["NeuronDeviceMemoryUsed"] == 2_500_000.0
    units = {m["Name"]: m["Unit"] for line in out for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"NeuronCoreUtilization": "Percent", "NeuronDeviceMemoryUsed": "Bytes"}
