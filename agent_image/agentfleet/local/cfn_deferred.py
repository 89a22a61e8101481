"""Create, through their service APIs, the resources the emulator's CloudFormation skips.

Properties are resolved against the created stack (its resources, parameters and the
account's exports). A resource whose properties cannot be resolved, or whose type has no
handler here, is skipped with a logged reason: local mode never fails on a missing alarm.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agentfleet.local import cfn_connection
from agentfleet.local.cfn_prep import ACCOUNT, Deferred
from agentfleet.local.emulator import REGION


class Unresolvable(ValueError):
    """An intrinsic function this resolver cannot evaluate locally."""


class Resolver:
    """Evaluates Ref, GetAtt, Join, Sub, Select, Split, ImportValue against a created stack."""

    def __init__(self, physical: dict[str, tuple[str, str]], parameters: dict[str, str],
                 exports: dict[str, str], stack_name: str) -> None:
        self.physical = physical  # logical id -> (resource type, physical id)
        self.values = {**parameters, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                       "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": stack_name}
        self.exports = exports

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            key, arg = next(iter(node.items()))
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(logical, attr)
            if key == "Fn::Join":
                return str(arg[0]).join(str(self(v)) for v in self(arg[1]))
            if key == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if key == "Fn::Split":
                return str(self(arg[1])).split(arg[0])
            if key == "Fn::ImportValue":
                name = str(self(arg))
                if name not in self.exports:
                    raise Unresolvable(f"export {name!r} not found")
                return self.exports[name]
            if key == "Fn::Sub":
                return self.sub(arg)
            if key.startswith("Fn::"):
                raise Unresolvable(f"{key} is not evaluated locally")
        return {k: self(v) for k, v in node.items()}

    def ref(self, name: str) -> str:
        if name in self.values:
            return self.values[name]
        if name in self.physical:
            return self.physical[name][1]
        raise Unresolvable(f"Ref {name} names nothing in the stack")

    def get_att(self, logical: str, attr: str) -> str:
        if logical not in self.physical:
            raise Unresolvable(f"GetAtt {logical}.{attr}: no such resource in the stack")
        rtype, physical = self.physical[logical]
        if physical.startswith("arn:"):
            return physical if attr in ("Arn", "TopicArn") else physical.rsplit(":", 1)[-1].split("/")[-1]
        if rtype == "AWS::Events::Connection" and attr in ("Arn", "SecretArn"):
            # As cfn_prep.Deferred names it before creation: the ARN without AWS's uuid (the HTTP Task
            # resolves it by name), and the managed secret moto creates as events!connection/NAME/UUID/auth
            # (moto/events/models.py Connection, moto 5.2.5).
            if attr == "Arn":
                return f"arn:aws:events:{REGION}:{ACCOUNT}:connection/{physical}"
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:events!connection/{physical}/*"
        arn_prefix = {"AWS::Kinesis::Stream": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/",
                      "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/",
                      "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:",
                      "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/",
                      "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:",
                      "AWS::S3::Bucket": "arn:aws:s3:::",
                      "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"}.get(rtype)
        if attr == "Arn" and arn_prefix:
            return arn_prefix + physical
        if attr.endswith("Name"):
            return physical
        raise Unresolvable(f"GetAtt {logical}.{attr} ({rtype}) is not evaluated locally")

    def sub(self, arg: Any) -> str:
        text, local = (arg[0], self(arg[1])) if isinstance(arg, list) else (arg, {})
        out, i = [], 0
        while (start := text.find("${", i)) >= 0:
            end = text.index("}", start)
            out.append(text[i:start])
            name = text[start + 2:end]
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in local:
                out.append(str(local[name]))
            elif "." in name and not name.startswith("AWS::"):
                out.append(self.get_att(*name.split(".", 1)))
            else:
                out.append(self.ref(name))
            i = end + 1
        return "".join(out) + text[i:]


def _state_machine(clients: Callable[[str], Any], props: dict[str, Any], item: Deferred) -> None:
    """Inline the definition (string, object or S3 asset) and apply DefinitionSubstitutions."""
    if "DefinitionString" in props:
        definition = str(props["DefinitionString"])
    elif "Definition" in props:
        definition = json.dumps(props["Definition"])
    else:
        where = props["DefinitionS3Location"]
        definition = clients("s3").get_object(Bucket=where["Bucket"], Key=where["Key"])["Body"].read().decode()
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    clients("stepfunctions").create_state_machine(
        name=item.name, definition=definition, roleArn=props["RoleArn"], type=props.get("StateMachineType", "STANDARD"))


def _subscription(clients: Callable[[str], Any], props: dict[str, Any], item: Deferred) -> None:
    attributes = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in props.items()
                  if k in ("FilterPolicy", "RawMessageDelivery", "RedrivePolicy")}
    clients("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
                             Attributes=attributes)


def _topic_policy(clients: Callable[[str], Any], props: dict[str, Any], item: Deferred) -> None:
    for topic in props.get("Topics", []):
        clients("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                            AttributeValue=json.dumps(props["PolicyDocument"]))


def _api(service: str, operation: str, **extra: str) -> Handler:
    """A handler passing the used properties straight to one API call (their names match the API's)."""
    def call(clients: Callable[[str], Any], props: dict[str, Any], item: Deferred) -> None:
        names = {key: getattr(item, attr) for key, attr in extra.items()}
        getattr(clients(service), operation)(**props, **names)
    return call


Handler = Callable[[Callable[[str], Any], dict[str, Any], Deferred], None]
# type -> (the properties the handler uses, the handler). Only those properties are resolved, so an
# unevaluable one the emulator would ignore anyway (a log group ARN for logging) does not block creation.
HANDLERS: dict[str, tuple[set[str], Handler]] = {
    "AWS::StepFunctions::StateMachine": ({"DefinitionString", "Definition", "DefinitionS3Location",
                                          "DefinitionSubstitutions", "RoleArn", "StateMachineType"}, _state_machine),
    "AWS::CloudWatch::Alarm": ({"AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
                                "InsufficientDataActions", "MetricName", "Namespace", "Statistic",
                                "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods",
                                "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
                                "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId"},
                               _api("cloudwatch", "put_metric_alarm")),
    "AWS::CloudWatch::CompositeAlarm": ({"AlarmName", "AlarmDescription", "AlarmRule", "ActionsEnabled",
                                         "AlarmActions", "OKActions", "InsufficientDataActions"},
                                        _api("cloudwatch", "put_composite_alarm")),
    "AWS::AutoScaling::LifecycleHook": ({"AutoScalingGroupName", "LifecycleHookName", "LifecycleTransition",
                                         "RoleARN", "NotificationTargetARN", "NotificationMetadata",
                                         "HeartbeatTimeout", "DefaultResult"},
                                        _api("autoscaling", "put_lifecycle_hook")),
    "AWS::AutoScaling::WarmPool": ({"AutoScalingGroupName", "MaxGroupPreparedCapacity", "MinSize", "PoolState",
                                    "InstanceReusePolicy"}, _api("autoscaling", "put_warm_pool")),
    "AWS::AutoScaling::ScalingPolicy": ({"AutoScalingGroupName", "PolicyType", "AdjustmentType",
                                         "MinAdjustmentMagnitude", "Cooldown", "MetricAggregationType",
                                         "StepAdjustments", "EstimatedInstanceWarmup", "TargetTrackingConfiguration",
                                         "ScalingAdjustment", "PredictiveScalingConfiguration"},
                                        _api("autoscaling", "put_scaling_policy", PolicyName="name")),
    "AWS::SNS::Subscription": ({"TopicArn", "Protocol", "Endpoint", "FilterPolicy", "RawMessageDelivery",
                                "RedrivePolicy"}, _subscription),
    "AWS::S3::BucketPolicy": ({"Bucket", "PolicyDocument"},
                              lambda c, p, d: c("s3").put_bucket_policy(Bucket=p["Bucket"],
                                                                        Policy=json.dumps(p["PolicyDocument"]))),
    "AWS::SNS::TopicPolicy": ({"Topics", "PolicyDocument"}, _topic_policy),
    "AWS::Events::Connection": ({"AuthorizationType", "AuthParameters", "Description"}, cfn_connection.create),
    "AWS::SecretsManager::Secret": ({"SecretString", "GenerateSecretString", "Description"},
                                    cfn_connection.create_secret),
}


def create(deferred: list[Deferred], resolve: Resolver, clients: Callable[[str], Any]) -> list[str]:
    """Create each deferred resource; returns one log line per resource (created or why not)."""
    lines = []
    for item in deferred:
        if item.type not in HANDLERS:
            lines.append(f"{item.logical_id}: {item.type} skipped (not emulated, no local handler)")
            continue
        used, handler = HANDLERS[item.type]
        try:
            handler(clients, resolve({k: v for k, v in item.properties.items() if k in used}), item)
        except Unresolvable as exc:
            lines.append(f"{item.logical_id}: {item.type} skipped ({exc})")
            continue
        except Exception as exc:  # an emulator gap must not stop the demo; the line says what failed
            lines.append(f"{item.logical_id}: {item.type} skipped (emulator refused: {exc})")
            continue
        lines.append(f"{item.logical_id}: {item.type} created through its API as {item.name}")
    return lines
