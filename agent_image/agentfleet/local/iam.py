"""The worker's IAM policy, read from the synthesized templates, evaluated here and enforced by the emulator.

`worker_policies(assembly)` finds the one role EC2 instances assume (the trust policy names
ec2.amazonaws.com) and collects what the templates give it: its managed policies (the state
stack's WorkerPolicy, reached through Fn::ImportValue) and its inline policies
(AWS::IAM::Policy resources naming the role). AWS-managed policies (AmazonSSMManagedInstanceCore:
the SSM agent's, not the runtime's) are listed, not applied. Nothing is copied by hand.

How moto 5.2.5 enforces IAM (moto/core/authorization.py, moto/iam/access_control.py):
- only from the moment INITIAL_NO_AUTH_ACTION_COUNT requests have been served (default: never);
  `POST /moto-api/reset-auth` with a number sets it and restarts the count;
- every request must then be signed with the access key of an IAM user (or an assumed role)
  that exists in the emulator, and the signature is checked;
- the action is checked against the identity's inline and attached policies, with `*` wildcards
  and explicit Deny; the *resource* is checked only for S3 (bucket/key ARN) and SQS; every other
  service authorizes against the resource "*", so a statement naming an ARN never matches there;
- conditions are ignored for identity policies (no request context is passed in).
So `for_emulator` keeps S3 resources (they are enforced) and widens the others to "*" (moto
would deny them all otherwise), and `allows` below evaluates actions *and* resources, without
conditions, for the static test of the runtime's calls.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.local.cfn_deferred import Resolver, Unresolvable
from agentfleet.local.deploy import stacks_in_order
from agentfleet.local.emulator import Identity, create_user

# Services whose requests moto authorizes against a real resource ARN (moto/core/authorization.py:
# _authenticate_and_authorize_s3_action; sqs/responses.py _determine_resource). IAM/STS are not
# called by workers.
RESOURCE_CHECKED = frozenset({"s3", "sqs"})
# Matches no real ARN, so a call that needs it stays denied; moto validates the ARN's partition.
UNRESOLVED = "arn:aws:unresolved:::"


@dataclass(frozen=True)
class PolicyDoc:
    """One policy the instance role carries: where it was found and its (raw or resolved) document."""

    name: str
    stack: str
    kind: str  # managed | inline
    document: dict[str, Any]


@dataclass
class WorkerPolicies:
    """Everything the templates give the instance role."""

    role: str  # "<stack>/<logical id>"
    documents: list[PolicyDoc] = field(default_factory=list)
    aws_managed: list[str] = field(default_factory=list)


def templates(assembly: Path) -> dict[str, dict[str, Any]]:
    """Stack name -> template, for every stack of a cloud assembly."""
    return {s.name: json.loads(s.template_file.read_text()) for s in stacks_in_order(assembly)}


EC2 = "ec2.amazonaws.com"  # the instance role: what workers and the boot run as
STATES = "states.amazonaws.com"  # the actions state machine's role: what its service integrations run as


def _trusts(resource: dict[str, Any], principal: str) -> bool:
    statements = resource.get("Properties", {}).get("AssumeRolePolicyDocument", {}).get("Statement", [])
    return any(principal in json.dumps(s.get("Principal", {})) for s in statements)


def _exported_ref(templates_by_stack: dict[str, dict[str, Any]], export: str) -> tuple[str, str]:
    """(stack, logical id) of the resource whose Ref a stack exports under `export`."""
    for stack, template in templates_by_stack.items():
        for output in template.get("Outputs", {}).values():
            name, value = output.get("Export", {}).get("Name"), output.get("Value")
            if name == export and isinstance(value, dict) and "Ref" in value:
                return stack, str(value["Ref"])
    raise KeyError(f"no stack exports {export!r} as a Ref")


def worker_policies(templates_by_stack: dict[str, dict[str, Any]], principal: str = EC2) -> WorkerPolicies:
    """The policies of the one role `principal` may assume (default: the instance role); raises if there
    is not exactly one."""
    roles = [(stack, lid, res) for stack, t in templates_by_stack.items() for lid, res in t["Resources"].items()
             if res["Type"] == "AWS::IAM::Role" and _trusts(res, principal)]
    if len(roles) != 1:
        raise ValueError(f"expected one role trusted by {principal}, found {[f'{s}/{r}' for s, r, _ in roles]}")
    stack, logical, role = roles[0]
    found = WorkerPolicies(f"{stack}/{logical}")
    props = role["Properties"]
    for arn in props.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Fn::ImportValue" in arn:
            source_stack, policy_id = _exported_ref(templates_by_stack, str(arn["Fn::ImportValue"]))
            policy = templates_by_stack[source_stack]["Resources"][policy_id]
            found.documents.append(PolicyDoc(policy_id, source_stack, "managed", policy["Properties"]["PolicyDocument"]))
        elif isinstance(arn, dict) and "Ref" in arn:
            policy = templates_by_stack[stack]["Resources"][arn["Ref"]]
            found.documents.append(PolicyDoc(arn["Ref"], stack, "managed", policy["Properties"]["PolicyDocument"]))
        else:  # an AWS managed policy (Fn::Join of arn:<partition>:iam::aws:policy/NAME)
            found.aws_managed.append(json.dumps(arn)[-60:].split("/")[-1].rstrip('"]}'))
    for policy in props.get("Policies", []):
        found.documents.append(PolicyDoc(policy["PolicyName"], stack, "inline", policy["PolicyDocument"]))
    for lid, res in templates_by_stack[stack]["Resources"].items():
        if res["Type"] == "AWS::IAM::Policy" and {"Ref": logical} in res["Properties"].get("Roles", []):
            found.documents.append(PolicyDoc(lid, stack, "inline", res["Properties"]["PolicyDocument"]))
    return found


def resolve(policies: WorkerPolicies, resolvers: Mapping[str, Callable[[Any], Any]]) -> list[PolicyDoc]:
    """Each document with its intrinsics evaluated by its own stack's resolver. A Resource entry that
    cannot be resolved becomes UNRESOLVED + its text (it then allows nothing), never a wildcard."""
    out = []
    for doc in policies.documents:
        resolver = resolvers[doc.stack]
        document = copy.deepcopy(doc.document)
        for statement in _statements(document):
            resources = statement.get("Resource", [])
            entries = resources if isinstance(resources, list) else [resources]
            statement["Resource"] = [_resolve_one(resolver, r) for r in entries]
            if "Condition" in statement:
                statement["Condition"] = resolver(statement["Condition"])
        out.append(PolicyDoc(doc.name, doc.stack, doc.kind, document))
    return out


def _resolve_one(resolver: Callable[[Any], Any], entry: Any) -> str:
    try:
        return str(resolver(entry))
    except (Unresolvable, KeyError, IndexError) as exc:
        return UNRESOLVED + re.sub(r"[^A-Za-z0-9.]+", "-", str(exc))[:120]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def for_emulator(doc: PolicyDoc) -> tuple[dict[str, Any], int]:
    """The document moto can enforce: S3/SQS statements keep their resources; a statement of other
    services gets Resource "*" (moto checks those against "*" only). Returns (document, widened count)."""
    statements, widened = [], 0
    for statement in _statements(doc.document):
        actions = _as_list(statement.get("Action", []))
        checked = [a for a in actions if a.split(":", 1)[0].lower() in RESOURCE_CHECKED]
        unchecked = [a for a in actions if a not in checked]
        if checked:
            statements.append({**statement, "Action": checked})
        if unchecked:
            statements.append({**statement, "Action": unchecked, "Resource": "*"})
            widened += statement.get("Resource") not in ("*", ["*"])
    return {"Version": "2012-10-17", "Statement": statements}, widened


def allows(documents: Iterable[PolicyDoc], action: str, resource: str | None = "*") -> bool:
    """IAM's evaluation without conditions: some Allow matches action and resource, no Deny does.
    Actions match case-insensitively with `*`/`?` wildcards; resources case-sensitively.
    `resource=None` asks about the action alone (on some resource)."""
    allowed = False
    for doc in documents:
        for statement in _statements(doc.document):
            if "NotAction" in statement or "NotResource" in statement:
                raise ValueError(f"{doc.name}: NotAction/NotResource are not evaluated here")
            if not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(statement.get("Action", []))):
                continue
            if resource is not None and not any(
                    fnmatch.fnmatchcase(resource, r) for r in _as_list(statement.get("Resource", "*"))):
                continue
            if statement.get("Effect") == "Deny":
                return False
            allowed = True
    return allowed


def create_worker(iam: Any, user: str, resolved: list[PolicyDoc]) -> tuple[Identity, int]:
    """The worker's identity under the resolved policies, as moto can enforce them; (identity, widened)."""
    converted = [(doc, *for_emulator(doc)) for doc in resolved]
    identity = create_user(iam, user, [(d.name, d.kind, document) for d, document, _ in converted])
    return identity, sum(w for _, _, w in converted)


def construct_paths(assembly: Path) -> dict[str, dict[str, str]]:
    """Stack name -> logical id -> construct path, from each stack's `<artifact>.metadata.json`
    (its aws:cdk:logicalId entries; `python app.py` writes no aws:cdk:path into templates)."""
    out: dict[str, dict[str, str]] = {}
    for stack in stacks_in_order(assembly):
        metadata_file = stack.template_file.with_name(stack.template_file.name.replace(".template.json", ".metadata.json"))
        entries = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
        out[stack.name] = {str(e["data"]): path for path, items in entries.items() for e in items
                           if e.get("type") == "aws:cdk:logicalId"}
    return out


def physical_from_paths(templates_by_stack: dict[str, dict[str, Any]], paths: dict[str, dict[str, str]],
                        by_path: dict[str, str]) -> dict[str, dict[str, tuple[str, str]]]:
    """Stack -> logical id -> (type, physical id) for resources whose construct path ends with a key
    of `by_path`: resources a test created itself stand in for the stack's."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for stack, template in templates_by_stack.items():
        out[stack] = {}
        for logical, res in template["Resources"].items():
            path = paths.get(stack, {}).get(logical, "")
            for suffix, physical in by_path.items():
                if path.endswith("/" + suffix):
                    out[stack][logical] = (res["Type"], physical)
    return out


def resolvers_for(templates_by_stack: dict[str, dict[str, Any]], physical: dict[str, dict[str, tuple[str, str]]],
                  exports: dict[str, str] | None = None) -> dict[str, Resolver]:
    """One resolver per stack. Without `exports` (no CloudFormation), each stack's exported outputs are
    evaluated from its template, so Fn::ImportValue in another stack resolves to the same values."""
    found = dict(exports or {})
    resolvers: dict[str, Resolver] = {}
    for stack, template in templates_by_stack.items():  # assembly order: exporters first
        defaults = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        resolvers[stack] = Resolver(physical.get(stack, {}), defaults, found, stack)
        if exports is None:
            for output in template.get("Outputs", {}).values():
                if "Export" in output:
                    found[str(output["Export"]["Name"])] = _resolve_one(resolvers[stack], output["Value"])
    return resolvers


def deployed_physical(cfn: Any, stacks: Iterable[str]) -> dict[str, dict[str, tuple[str, str]]]:
    """Stack -> logical id -> (type, physical id), as the emulator's CloudFormation created them."""
    return {stack: {r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
                    for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
            for stack in stacks}
