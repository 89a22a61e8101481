"""Predictive scaling beside target tracking: the policy's properties, its modes and its config errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from constructs.capacity import PredictiveCapacity

from agentfleet.spec import metric_names as m
from agentfleet.spec.catalog import ConfigError
from tests.cdk.conftest import make_config

Get = Callable[[str], Template]


def _policies(template: Template, kind: str) -> list[dict[str, Any]]:
    return [p["Properties"] for p in template.find_resources("AWS::AutoScaling::ScalingPolicy").values()
            if p["Properties"]["PolicyType"] == kind]


def test_predictive_policy_forecasts_and_scales_on_the_backlog(template_of: Get) -> None:
    config = make_config()
    (policy,) = _policies(template_of("AgentFleet"), "PredictiveScaling")
    predictive = policy["PredictiveScalingConfiguration"]
    assert predictive["Mode"] == "ForecastAndScale"
    assert predictive["SchedulingBufferTime"] == config.predictive_scheduling_buffer_minutes * 60 == 900
    assert predictive["MaxCapacityBreachBehavior"] == "HonorMaxCapacity"
    assert "MaxCapacityBuffer" not in predictive  # only valid with IncreaseMaxCapacity
    (spec,) = predictive["MetricSpecifications"]
    # Same operating point as target tracking: backlog records per in-service instance.
    assert spec["TargetValue"] == config.backlog_target_per_instance
    (load,) = spec["CustomizedLoadMetricSpecification"]["MetricDataQueries"]
    assert load["MetricStat"]["Stat"] == "Sum" and "ReturnData" not in load
    assert load["MetricStat"]["Metric"] == {"Namespace": m.NAMESPACE, "MetricName": m.BACKLOG_RECORDS,
                                            "Dimensions": [{"Name": m.FLEET, "Value": config.fleet_name}]}
    queries = {q["Id"]: q for q in spec["CustomizedScalingMetricSpecification"]["MetricDataQueries"]}
    # Metric math: ReturnData true only on the final expression, false on every other query.
    assert [q["ReturnData"] for q in queries.values()] == [False, False, True]
    assert queries["per_instance"]["Expression"] == "backlog / instances"
    assert queries["instances"]["MetricStat"]["Metric"]["MetricName"] == "GroupInServiceInstances"
    (group_id,) = template_of("AgentFleet").find_resources("AWS::AutoScaling::AutoScalingGroup")
    assert queries["instances"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "AutoScalingGroupName", "Value": {"Ref": group_id}}]
    assert policy["AutoScalingGroupName"] == {"Ref": group_id}


def test_target_tracking_stays_for_what_the_forecast_misses(template_of: Get) -> None:
    (tracking,) = _policies(template_of("AgentFleet"), "TargetTrackingScaling")
    metric = tracking["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]
    assert (metric["MetricName"], metric["Statistic"]) == (m.BACKLOG_RECORDS, "Average")


def _small(**overrides: Any) -> tuple[Template, PredictiveCapacity]:
    stack = cdk.Stack(cdk.App(), "CapacityTest")
    capacity = PredictiveCapacity(stack, "Capacity", config=make_config(**overrides), group_name="fleet-asg")
    return Template.from_stack(stack), capacity


def test_forecast_only_mode_and_buffer_from_config() -> None:
    template, _ = _small(predictive_scaling="forecast-only", predictive_scheduling_buffer_minutes=25)
    template.has_resource_properties("AWS::AutoScaling::ScalingPolicy", {
        "AutoScalingGroupName": "fleet-asg", "PolicyType": "PredictiveScaling",
        "PredictiveScalingConfiguration": Match.object_like({"Mode": "ForecastOnly", "SchedulingBufferTime": 1500})})


def test_off_creates_no_policy() -> None:
    template, capacity = _small(predictive_scaling="off")
    template.resource_count_is("AWS::AutoScaling::ScalingPolicy", 0)
    assert capacity.policy is None


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"predictive_scaling": "sometimes"}, "predictive_scaling must be one of on, off, forecast-only"),
    ({"predictive_scheduling_buffer_minutes": 60}, "predictive_scheduling_buffer_minutes must be between 0 and 59"),
    ({"predictive_scheduling_buffer_minutes": -1}, "predictive_scheduling_buffer_minutes must be between 0 and 59"),
])
def test_bad_predictive_config_names_the_key(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(**overrides)
    assert expected in str(err.value)
