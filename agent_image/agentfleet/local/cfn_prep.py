"""Make a synthesized template deployable into the emulator's CloudFormation, and say what changed.

moto's CloudFormation resolves SSM-typed parameters from its own (empty) parameter store,
cannot run custom resources (they need a Lambda runtime in Docker), creates on-demand
Kinesis streams with one shard, skips resource types it does not model, and creates state
machines without their DefinitionSubstitutions or S3 definition, in a store that executions
(switched on by the emulator) never look in. So: SSM-typed parameters get plain local
defaults, GlobalTable becomes Table, custom resources are dropped, on-demand streams get
the 4 shards AWS starts them with, and state machines and every unmodelled resource are
taken out of the template and handed to `deferred` (created through their service APIs
after the stack). References to taken-out resources become the names and ARNs they will be
created with, so the rest of the template still resolves.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from agentfleet.local.emulator import REGION

ACCOUNT = "123456789012"  # moto's default account
ON_DEMAND_SHARDS = 4  # an on-demand stream's initial write capacity in AWS
# Used only when moto cannot be imported to ask which types its CloudFormation models.
_KNOWN_UNMODELLED = {
    "AWS::DynamoDB::GlobalTable", "AWS::AutoScaling::LifecycleHook", "AWS::AutoScaling::WarmPool",
    "AWS::AutoScaling::ScalingPolicy", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm",
    "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy", "AWS::Budgets::Budget",
    "AWS::Events::Connection", "AWS::SecretsManager::Secret",
}
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
CONNECTION = "AWS::Events::Connection"
SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type, not a secret
# The name property of types whose name a Ref or GetAtt may need before they exist.
_NAME_PROPERTY = {
    "AWS::AutoScaling::LifecycleHook": "LifecycleHookName", "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName", STATE_MACHINE: "StateMachineName", CONNECTION: "Name",
    SECRET: "Name",
}


@dataclass
class Deferred:
    """A resource the emulator's CloudFormation would skip: created later through its API."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    name: str  # the physical name it will get

    @property
    def arn(self) -> str:
        if self.type == STATE_MACHINE:
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.name}"
        if self.type.startswith("AWS::CloudWatch::"):
            return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{self.name}"
        if self.type == CONNECTION:
            # AWS appends a uuid it picks at creation (connection/NAME/UUID); this is the ARN without it,
            # which the emulator's HTTP Task resolves by name (agentfleet.local.sfn_http_auth).
            return f"arn:aws:events:{REGION}:{ACCOUNT}:connection/{self.name}"
        return self.name

    def attribute(self, attr: str) -> str:
        """What `Fn::GetAtt` returns before the resource exists."""
        if attr == "Arn":
            return self.arn
        if self.type == CONNECTION and attr == "SecretArn":
            # The secret EventBridge manages for the connection (the attribute aws-cdk-lib 2.275 grants
            # HttpInvoke's role on); its name ends in a suffix only known once it exists.
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:events!connection/{self.name}/*"
        return self.name

    @property
    def ref(self) -> str:
        """What `Ref` returns for this resource (a state machine's Ref is its ARN)."""
        return self.arn if self.type == STATE_MACHINE else self.name


@dataclass
class Prepared:
    template: dict[str, Any]
    deferred: list[Deferred] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per change, for the deploy log


def modelled_types() -> set[str] | None:
    """The resource types the emulator's CloudFormation creates (None if moto is not importable)."""
    try:
        from moto.cloudformation.parsing import get_model_map
    except ImportError:
        return None
    return set(get_model_map())


def is_modelled(resource_type: str, modelled: set[str] | None) -> bool:
    if resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource":
        return False
    if modelled is None:
        return resource_type not in _KNOWN_UNMODELLED
    return resource_type in modelled


def prepare(template: dict[str, Any], stack_name: str, image_id: str,
            modelled: set[str] | None = None) -> Prepared:
    """A copy of `template` the emulator can create; `image_id` stands in for SSM AMI lookups."""
    out = Prepared(copy.deepcopy(template))
    _parameters(out, image_id)
    resources: dict[str, Any] = out.template.get("Resources", {})
    renamed: dict[str, Deferred] = {}
    dropped: set[str] = set()
    for logical_id, resource in list(resources.items()):
        rtype = resource.get("Type", "")
        props = resource.setdefault("Properties", {})
        if rtype == "AWS::DynamoDB::GlobalTable":
            resource["Type"], resource["Properties"] = "AWS::DynamoDB::Table", _global_to_table(props)
            out.notes.append(f"{logical_id}: AWS::DynamoDB::GlobalTable created as AWS::DynamoDB::Table (one region)")
        elif rtype == "AWS::Kinesis::Stream" and "ShardCount" not in props:
            props["ShardCount"] = ON_DEMAND_SHARDS
            props.pop("StreamModeDetails", None)
            out.notes.append(f"{logical_id}: on-demand stream created with {ON_DEMAND_SHARDS} shards")
        elif rtype == "AWS::KMS::Key" and props.get("Tags"):
            # moto's KMS reads CloudFormation tags with the API's TagKey/TagValue names (KeyError otherwise).
            props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props["Tags"]]
        elif rtype == "AWS::SSM::Parameter" and isinstance(props.get("Tags"), dict):
            # An SSM parameter's CloudFormation tags are a map; moto iterates them as a Key/Value list.
            props["Tags"] = [{"Key": k, "Value": v} for k, v in props["Tags"].items()]
        elif rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource":
            del resources[logical_id]
            dropped.add(logical_id)
            out.notes.append(f"{logical_id}: {rtype} skipped (custom resources need a Lambda runtime)")
        elif rtype == STATE_MACHINE or not is_modelled(rtype, modelled):
            del resources[logical_id]
            name_prop = _NAME_PROPERTY.get(rtype, "")
            name = props.get(name_prop) if name_prop else None
            deferred = Deferred(logical_id, rtype, props,
                                name if isinstance(name, str) else f"{stack_name}-{logical_id}")
            if name_prop and not isinstance(name, str):
                props[name_prop] = deferred.name
            out.deferred.append(deferred)
            renamed[logical_id] = deferred
    removed = set(renamed) | dropped
    for resource in resources.values():
        _drop_depends_on(resource, removed)
    out.template = _rewrite_refs(out.template, renamed, dropped)
    for item in out.deferred:
        item.properties = _rewrite_refs(item.properties, renamed, dropped)
    # alarms and policies may name a state machine; a connection may read a secret
    out.deferred.sort(key=lambda d: {STATE_MACHINE: 0, SECRET: 1}.get(d.type, 2))
    return out


def _parameters(out: Prepared, image_id: str) -> None:
    """SSM-typed parameters become plain Strings with local defaults (the emulator's store is empty)."""
    for name, param in out.template.get("Parameters", {}).items():
        ptype = str(param.get("Type", "String"))
        if ptype.startswith("AWS::SSM::Parameter::Value<"):
            inner = ptype[len("AWS::SSM::Parameter::Value<"):-1]
            value = image_id if "Image::Id" in inner else ("30" if name == "BootstrapVersion" else f"local-{name}")
            out.notes.append(f"parameter {name}: SSM {param.get('Default', '')!r} -> local default {value!r}")
            param["Type"], param["Default"] = "String", value
        elif "Default" not in param:
            # Legacy asset parameters (and any other required one) get a visible placeholder.
            param["Default"] = f"local-{name}"
            out.notes.append(f"parameter {name}: no default -> {param['Default']!r}")


def _global_to_table(props: dict[str, Any]) -> dict[str, Any]:
    """GlobalTable properties as a single-region Table: replica settings move to the table."""
    table = {k: v for k, v in props.items() if k not in ("Replicas", "WriteProvisionedThroughputSettings",
                                                         "WriteOnDemandThroughputSettings")}
    replica: dict[str, Any] = next(iter(props.get("Replicas", [])), {})
    for key in ("PointInTimeRecoverySpecification", "ContributorInsightsSpecification", "TableClass",
                "DeletionProtectionEnabled", "Tags"):
        if key in replica:
            table[key] = replica[key]
    sse = props.get("SSESpecification")
    if isinstance(sse, dict):
        table["SSESpecification"] = {k: v for k, v in sse.items() if k in ("SSEEnabled", "SSEType")}
    return table


def _drop_depends_on(resource: dict[str, Any], removed: set[str]) -> None:
    depends = resource.get("DependsOn")
    if isinstance(depends, str):
        depends = [depends]
    if isinstance(depends, list):
        kept = [d for d in depends if d not in removed]
        if kept:
            resource["DependsOn"] = kept
        else:
            resource.pop("DependsOn", None)


def _rewrite_refs(node: Any, renamed: dict[str, Deferred], dropped: set[str]) -> Any:
    """Refs and GetAtts to taken-out resources become the names/ARNs they will be created with."""
    if isinstance(node, list):
        return [_rewrite_refs(v, renamed, dropped) for v in node]
    if not isinstance(node, dict):
        return node
    if "Ref" in node and node["Ref"] in renamed:
        return renamed[node["Ref"]].ref
    if "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        logical, attr = target if isinstance(target, list) else str(target).split(".", 1)
        if logical in renamed:
            return renamed[logical].attribute(attr)
        if logical in dropped:
            return f"local-{logical}-{attr}"
    if "Ref" in node and node["Ref"] in dropped:
        return f"local-{node['Ref']}"
    return {k: _rewrite_refs(v, renamed, dropped) for k, v in node.items()}
