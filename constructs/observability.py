"""Observability: one dashboard for the whole fleet and the alarms that page someone."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from constructs.inference_widgets import inference_widgets

from agentfleet.spec import metric_names as m
from agentfleet.spec.fleet import FleetConfig

SECTIONS = ("Ingest", "Agents", "Inference", "Fleet", "Neuron", "Actions", "Cost")
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
        self.alarm_topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True,
                                     display_name="Agent Fleet Kit alarms")
        # The topic policy CDK writes replaces SNS's default one, so CloudWatch alarms must be let in
        # explicitly (Budgets is, by CostControls). Conditions keep it to this account's alarms:
        # repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger (ArnLike aws:SourceArn),
        # docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html (aws:SourceAccount).
        stack = Stack.of(self)
        alarms = {"StringEquals": {"aws:SourceAccount": stack.account},
                  "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"}}
        budgets = {"StringEquals": {"aws:SourceAccount": stack.account},
                   "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:budgets::{stack.account}:*"}}
        self.alarm_topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowCloudWatchAlarmsPublish", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"], resources=[self.alarm_topic.topic_arn], conditions=alarms))
        # Publishing to an encrypted topic needs the key too (sns-key-management.html, "compatibility with
        # AWS services"); the same source conditions apply to the key use.
        for service, conditions in (("cloudwatch.amazonaws.com", alarms), ("budgets.amazonaws.com", budgets)):
            key.add_to_resource_policy(iam.PolicyStatement(
                principals=[iam.ServicePrincipal(service)], actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"], conditions=conditions))
        if config.alarm_email:
            self.alarm_topic.add_subscription(subs.EmailSubscription(config.alarm_email))
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(6))
        asg = {"AutoScalingGroupName": group_name}
        in_service = cw.Metric(namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances",
                               dimensions_map=asg, statistic="Minimum", period=Duration.minutes(1))
        unleased = self.unleased_stream(stream)
        self._section("Ingest", [
            self._graph("Records and bytes in", [stream.metric_incoming_records(), stream.metric_incoming_bytes()]),
            self._graph("Shards leased (sum over workers), lease failures, unread stream", [
                self.metric(m.LEASED_SHARDS, period=Duration.minutes(1)),
                self.metric(m.LEASE_BALANCING_FAILURES, period=Duration.minutes(1)), unleased]),
            self._graph("Iterator age (max ms)", [stream.metric_get_records_iterator_age_milliseconds(statistic="Maximum")]),
            self._graph("Throttles", [stream.metric_write_provisioned_throughput_exceeded(),
                                      stream.metric_read_provisioned_throughput_exceeded()]),
        ])
        self._section("Agents", [
            self._graph("Events processed / quarantined", [self.metric(m.EVENTS_PROCESSED),
                                                          self.quarantined()]),
            self._graph("Decisions by outcome", [self.metric(m.DECISIONS, {m.OUTCOME: o}, label=o)
                                                 for o in m.DECISION_OUTCOMES]),
            self._graph("Quarantined by reason", [self.metric(m.EVENTS_QUARANTINED, {m.REASON: r}, label=r)
                                                  for r in m.QUARANTINE_REASONS]),
            self._graph("Inference latency (ms)", [self.metric(m.INFERENCE_LATENCY_MS, statistic=p, label=p)
                                                   for p in ("p50", "p90", "p99")]),
            self._graph("Tokens/s and batch fill %", [self.metric(m.TOKENS_PER_SECOND, statistic="Average"),
                                                      self.metric(m.BATCH_FILL_PERCENT, statistic="Average")]),
        ])
        self._section("Inference", inference_widgets(self.metric, config.fleet_name, [a.name for a in config.agents]))
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
            self._alarm("QuarantineRate", self.quarantined(), config.alarm_quarantined_per_5min,
                        "Producers are sending records the fleet cannot use"),
            # Missing data: `unleased` fills both inputs with 0 itself, so it has a value whenever either
            # metric does; with neither (no records and no workers) nothing is unread: not breaching.
            cw.Alarm(self, "StreamNotRead", metric=unleased, threshold=1, evaluation_periods=2, datapoints_to_alarm=2,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                     alarm_description="Records arrive on the stream but no worker holds a shard lease "
                                       "(lease balancing failing: see LeaseBalancingFailures and worker logs)"),
            self._alarm("CompileCacheMisses", self.metric(m.COMPILE_CACHE_MISSES, period=Duration.hours(1)),
                        config.alarm_compile_cache_misses, "Instances keep compiling: the cache key or upload is broken"),
            cw.Alarm(self, "NoInstanceInService", metric=in_service, threshold=1, evaluation_periods=5,
                     comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.BREACHING,
                     alarm_description="No instance in service: no agent is running"),
        ]
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))

    def quarantined(self) -> cw.MathExpression:
        """EventsQuarantined over every reason. The runtime emits it only with {Fleet, Reason}
        (ingest/shards.py), and CloudWatch does not add up a dimension that a query leaves out."""
        parts = {f"q{i}": self.metric(m.EVENTS_QUARANTINED, {m.REASON: r}) for i, r in enumerate(m.QUARANTINE_REASONS)}
        return cw.MathExpression(expression=f"SUM([{', '.join(parts)}])", using_metrics=parts,
                                 label="Quarantined (all reasons)", period=_5MIN)

    def unleased_stream(self, stream: kinesis.IStream) -> cw.MathExpression:
        """1 where the stream took records and the workers' LeasedShards gauges sum to 0, else 0.
        FILL(..., 0): no LeasedShards datapoint at all (no worker emitting) counts as 0 shards leased.
        Metric math IF/AND/FILL: docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html"""
        return cw.MathExpression(
            expression="IF(FILL(incoming, 0) > 0 AND FILL(leased, 0) == 0, 1, 0)",
            using_metrics={"incoming": stream.metric_incoming_records(statistic="Sum", period=_5MIN),
                           "leased": self.metric(m.LEASED_SHARDS, period=_5MIN)},
            label="Stream has records, no shard leased", period=_5MIN)

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
