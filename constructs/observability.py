"""Observability: one dashboard for the whole fleet and the alarms that page someone."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from agentfleet.spec import metric_names as m
from agentfleet.spec.fleet import FleetConfig

SECTIONS = ("Ingest", "Agents", "Fleet", "Neuron", "Actions", "Cost")
_5MIN = Duration.minutes(5)


class Observability(Construct):
    """Creates `alarm_topic` (KMS-encrypted SNS), `dashboard` (sections: SECTIONS) and `alarms`.

    Runtime metric names come from agentfleet.spec.metric_names, the module the workers use.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, stream: kinesis.IStream,
                 group_name: str, state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, construct_id)
        self._fleet = config.fleet_name
        key = kms.Key(self, "AlarmKey", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY,
                      description="Agent Fleet Kit: alarm topic")
        for service in ("cloudwatch.amazonaws.com", "budgets.amazonaws.com"):
            key.grant(iam.ServicePrincipal(service), "kms:Decrypt", "kms:GenerateDataKey*")
        self.alarm_topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True,
                                     display_name="Agent Fleet Kit alarms")
        if config.alarm_email:
            self.alarm_topic.add_subscription(subs.EmailSubscription(config.alarm_email))
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(6))
        asg = {"AutoScalingGroupName": group_name}
        in_service = cw.Metric(namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                               dimensions_map=asg, statistic="Minimum", period=Duration.minutes(1))
        self._section("Ingest", [
            self._graph("Records and bytes in", [stream.metric_incoming_records(), stream.metric_incoming_bytes()]),
            self._graph("Iterator age (max ms)", [stream.metric_get_records_iterator_age_milliseconds(statistic="Maximum")]),
            self._graph("Throttles", [stream.metric_write_provisioned_throughput_exceeded(),
                                      stream.metric_read_provisioned_throughput_exceeded()]),
        ])
        self._section("Agents", [
            self._graph("Events processed / quarantined", [self.metric(m.EVENTS_PROCESSED),
                                                          self.metric(m.EVENTS_QUARANTINED)]),
            self._graph("Decisions by outcome", [self.metric(m.DECISIONS, {m.OUTCOME: o}, label=o)
                                                 for o in m.DECISION_OUTCOMES]),
            self._graph("Quarantined by reason", [self.metric(m.EVENTS_QUARANTINED, {m.REASON: r}, label=r)
                                                  for r in m.QUARANTINE_REASONS]),
            self._graph("Inference latency (ms)", [self.metric(m.INFERENCE_LATENCY_MS, statistic=p, label=p)
                                                   for p in ("p50", "p90", "p99")]),
            self._graph("Tokens/s and batch fill %", [self.metric(m.TOKENS_PER_SECOND, statistic="Average"),
                                                      self.metric(m.BATCH_FILL_PERCENT, statistic="Average")]),
        ])
        self._section("Fleet", [
            self._graph("In service / pending", [in_service, cw.Metric(
                namespace="AWS/AutoScaling", metric_name="GroupPendingInstances", dimensions_map=asg,
                statistic="Maximum", period=Duration.minutes(1))]),
            self._graph("Workers by market", [self.metric(m.WORKERS_IN_SERVICE, {m.MARKET: k}, label=k,
                                                          period=Duration.minutes(1)) for k in ("spot", "on-demand")]),
            self._graph("Spot interruption notices", [self.metric(m.SPOT_INTERRUPTIONS)]),
            self._graph("Boot to ready (s)", [self.metric(m.BOOT_TO_READY_SECONDS, statistic="Maximum")]),
            self._graph("Compile cache", [self.metric(m.COMPILE_CACHE_HITS), self.metric(m.COMPILE_CACHE_MISSES),
                                          self.metric(m.COMPILE_SECONDS, statistic="Maximum")]),
        ])
        self._section("Neuron", [
            self._graph("NeuronCore utilization %", [self.metric(m.NEURON_CORE_UTILIZATION, statistic="Average")]),
            self._graph("Device memory used (bytes)", [self.metric(m.NEURON_DEVICE_MEMORY_USED, statistic="Maximum")]),
        ])
        self._section("Actions", [
            self._graph("Executions", [state_machine.metric_started(), state_machine.metric_succeeded(),
                                       state_machine.metric_failed(), state_machine.metric_timed_out()]),
            self._graph("Actions dispatched", [self.metric(m.ACTIONS_DISPATCHED)]),
        ])
        self.alarms = [
            self._alarm("IteratorAge", stream.metric_get_records_iterator_age_milliseconds(statistic="Maximum", period=_5MIN),
                        config.alarm_iterator_age_ms, "Workers are falling behind the stream"),
            self._alarm("ActionFailures", state_machine.metric_failed(period=_5MIN), config.alarm_action_failures,
                        "Actions are failing after retries"),
            self._alarm("QuarantineRate", self.metric(m.EVENTS_QUARANTINED, period=_5MIN),
                        config.alarm_quarantined_per_5min, "Producers are sending records the fleet cannot use"),
            self._alarm("CompileCacheMisses", self.metric(m.COMPILE_CACHE_MISSES, period=Duration.hours(1)),
                        config.alarm_compile_cache_misses, "Instances keep compiling: the cache key or upload is broken"),
            cw.Alarm(self, "NoInstanceInService", metric=in_service, threshold=1, evaluation_periods=5,
                     comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.BREACHING,
                     alarm_description="No instance in service: no agent is running"),
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))

    def metric(self, name: str, extra: dict[str, str] | None = None, *, statistic: str = "Sum",
               label: str | None = None, period: Duration = _5MIN) -> cw.Metric:
        """A runtime metric of this fleet (namespace and names shared with the workers)."""
        return cw.Metric(namespace=m.NAMESPACE, metric_name=name, statistic=statistic, label=label, period=period,
                         dimensions_map={m.FLEET: self._fleet, **(extra or {})})

    def add_section(self, title: str, widgets: Sequence[cw.IWidget]) -> None:
        """Append a titled row of widgets (the cost section arrives this way)."""
        self._section(title, widgets)

    def _section(self, title: str, widgets: Sequence[cw.IWidget]) -> None:
        self.dashboard.add_widgets(cw.TextWidget(markdown=f"## {title}", width=24, height=1))
        self.dashboard.add_widgets(*widgets)

    @staticmethod
    def _graph(title: str, metrics: Sequence[cw.IMetric]) -> cw.GraphWidget:
        return cw.GraphWidget(title=title, left=list(metrics), width=8, height=6)

    def _alarm(self, construct_id: str, metric: cw.IMetric, threshold: int, description: str) -> cw.Alarm:
        return cw.Alarm(self, construct_id, metric=metric, threshold=threshold, evaluation_periods=1,
                        comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                        treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
