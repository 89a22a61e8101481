"""PredictiveCapacity: capacity ahead of load for the Neuron fleet's Auto Scaling group.

Agents are steady and a Trainium boot is long (launch, image pull, weights, NEFF load, warm-up all
happen in Pending:Wait behind the launch hook), so target tracking alone adds capacity one boot too
late for every daily ramp. A predictive scaling policy forecasts the fleet's load from the last 14
days and launches ahead of it; target tracking (NeuronFleet) stays for what the forecast misses.

Facts used, all from the Auto Scaling API model (botocore 1.44 `autoscaling/2011-01-01/service-2.json`,
shapes PredictiveScalingConfiguration, PredictiveScalingMetricSpecification, MetricDataQuery) and the
user guide page "Advanced predictive scaling policy using custom metrics"
(docs.aws.amazon.com/autoscaling/ec2/userguide/predictive-scaling-customized-metric-specification.html):
- Mode ForecastAndScale | ForecastOnly (default ForecastOnly); SchedulingBufferTime in seconds, below 3600
  (default 300); MaxCapacityBreachBehavior HonorMaxCapacity (default) | IncreaseMaxCapacity.
- One metric specification: TargetValue plus a customized load metric and a customized scaling metric.
  TargetValue for a count metric is "the optimal average ... count per instance during any one-minute
  interval". The load metric should be the group's load as a whole; the scaling metric an average per
  instance, inversely proportional to capacity and strongly correlated with the load.
- With metric math, ReturnData is true only on the final expression and false on every other query.
- The forecast uses up to 14 days of load data and needs at least 24 hours of it: a new fleet gets no
  predictive capacity on its first day (target tracking covers it).
CDK 2.275 has no L2 construct for predictive scaling (aws_autoscaling has only the CfnScalingPolicy
property classes), hence CfnScalingPolicy.
"""

from __future__ import annotations

from aws_cdk import aws_autoscaling as autoscaling
from constructs import Construct

from agentfleet.spec import metric_names as m
from agentfleet.spec.fleet import FleetConfig

MODES = {"on": "ForecastAndScale", "forecast-only": "ForecastOnly"}
_P = autoscaling.CfnScalingPolicy


class PredictiveCapacity(Construct):
    """Creates `policy` (a PredictiveScaling CfnScalingPolicy on `group_name`), or nothing (`policy` None)
    when `predictive_scaling` is `off`.

    Load metric: the fleet's backlog, BacklogRecords summed over every worker (each worker's gauge is the
    records behind on the shards it holds, once a minute). Scaling metric: that sum divided by the group's
    GroupInServiceInstances, i.e. the backlog per instance the target tracking policy also holds at
    `backlog_target_per_instance`, so both policies aim at the same operating point. The backlog is a
    demand signal only relative to the capacity that drains it (the guide prefers a load independent of
    capacity); it is the signal the fleet already scales on, and the stream's arrivals would need a
    per-instance records/minute figure nobody has measured yet.

    MaxCapacityBreachBehavior HonorMaxCapacity: `max_capacity` is the fleet's cost ceiling (sized with
    `monthly_budget_usd`); IncreaseMaxCapacity raises the maximum for good ("does not automatically decrease
    back", API docs), which on $35/h instances must stay an explicit operator decision.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, group_name: str) -> None:
        super().__init__(scope, construct_id)
        self.policy: autoscaling.CfnScalingPolicy | None = None
        if config.predictive_scaling == "off":
            return
        fleet = [_P.MetricDimensionProperty(name=m.FLEET, value=config.fleet_name)]
        backlog = _P.MetricStatProperty(
            metric=_P.MetricProperty(namespace=m.NAMESPACE, metric_name=m.BACKLOG_RECORDS, dimensions=fleet),
            stat="Sum")
        in_service = _P.MetricStatProperty(
            metric=_P.MetricProperty(namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                                     dimensions=[_P.MetricDimensionProperty(name="AutoScalingGroupName",
                                                                            value=group_name)]),
            stat="Average")
        self.policy = autoscaling.CfnScalingPolicy(
            self, "Policy", auto_scaling_group_name=group_name, policy_type="PredictiveScaling",
            predictive_scaling_configuration=_P.PredictiveScalingConfigurationProperty(
                mode=MODES[config.predictive_scaling],
                # Launch ahead by a warm boot (cache hit): the instance must be ready when the forecast hour
                # starts, and it is InService only once its model answers (launch hook).
                scheduling_buffer_time=config.predictive_scheduling_buffer_minutes * 60,
                max_capacity_breach_behavior="HonorMaxCapacity",
                metric_specifications=[_P.PredictiveScalingMetricSpecificationProperty(
                    target_value=float(config.backlog_target_per_instance),
                    customized_load_metric_specification=_P.PredictiveScalingCustomizedLoadMetricProperty(
                        metric_data_queries=[_P.MetricDataQueryProperty(
                            id="load", metric_stat=backlog, label="Fleet backlog (records)")]),
                    customized_scaling_metric_specification=_P.PredictiveScalingCustomizedScalingMetricProperty(
                        metric_data_queries=[
                            _P.MetricDataQueryProperty(id="backlog", metric_stat=backlog, return_data=False),
                            _P.MetricDataQueryProperty(id="instances", metric_stat=in_service, return_data=False),
                            _P.MetricDataQueryProperty(id="per_instance", expression="backlog / instances",
                                                       label="Backlog per in-service instance",
                                                       return_data=True),
                        ]),
                )],
            ),
        )
