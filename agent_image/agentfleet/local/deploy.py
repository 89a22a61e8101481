"""Synthesize the CDK app and deploy its templates into the emulator through the CloudFormation API.

The same steps `cdk deploy` takes, done with boto3 against the emulator: publish each
stack's file assets to the bootstrap asset bucket, upload the (locally prepared) template
to S3, CreateStack with its TemplateURL, in dependency order, then create what the
emulator's CloudFormation skips. Outputs come back from DescribeStacks.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.local import cfn_deferred, cfn_prep
from agentfleet.local.emulator import REGION
from agentfleet.ops import logs

log = logs.get(__name__)
ROOT = Path(__file__).resolve().parents[3]  # the repository: app.py, cdk.json
TEMPLATE_BUCKET = "agentfleet-local-templates"


class DeployError(RuntimeError):
    """A stack did not reach CREATE_COMPLETE; the message carries the emulator's reasons."""


@dataclass
class StackArtifact:
    name: str
    template_file: Path
    assets_file: Path | None
    dependencies: list[str]


@dataclass
class Deployed:
    """What the deploy produced: outputs per stack and one note per local adaptation."""

    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # stack -> logical id -> (type, physical id) of what was created through service APIs, not
    # CloudFormation (a state machine's physical id is its ARN, as its Ref is)
    deferred: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def output(self, key_suffix: str) -> str:
        """The one output whose key ends with `key_suffix` (CDK prefixes keys with construct paths)."""
        found = [v for outs in self.outputs.values() for k, v in outs.items() if k.endswith(key_suffix)]
        if len(found) != 1:
            raise KeyError(f"expected one stack output ending {key_suffix!r}, found {len(found)}")
        return found[0]


def synth(out_dir: Path, root: Path = ROOT, context: dict[str, Any] | None = None) -> Path:
    """Run the app (`python app.py`) with cdk.json's context, as the CDK CLI would; returns the assembly dir."""
    cdk_json = json.loads((root / "cdk.json").read_text())
    ctx = {**cdk_json.get("context", {}), **(context or {})}
    env = {**os.environ, "CDK_OUTDIR": str(out_dir), "CDK_CONTEXT_JSON": json.dumps(ctx),
           "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    out_dir.mkdir(parents=True, exist_ok=True)
    with logs.timed(log, "synthesized the app", out=str(out_dir)):
        done = subprocess.run([sys.executable, "app.py"], cwd=root, env=env, capture_output=True, text=True,
                              check=False, timeout=600)
    if done.returncode != 0:
        raise DeployError(f"app.py failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return out_dir


def stacks_in_order(assembly: Path) -> list[StackArtifact]:
    """Stack artifacts of a cloud assembly, each after the stacks it depends on."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    artifacts: dict[str, Any] = manifest.get("artifacts", {})
    stacks: dict[str, StackArtifact] = {}
    for art_id, art in artifacts.items():
        if art.get("type") != "aws:cloudformation:stack":
            continue
        deps = art.get("dependencies", [])
        assets = [artifacts[d]["properties"]["file"] for d in deps
                  if artifacts.get(d, {}).get("type") == "cdk:asset-manifest"]
        props = art.get("properties", {})
        stacks[art_id] = StackArtifact(props.get("stackName", art_id), assembly / props["templateFile"],
                                       assembly / assets[0] if assets else None, deps)
    ordered: list[StackArtifact] = []

    def visit(art_id: str, path: tuple[str, ...]) -> None:
        if art_id in path:
            raise DeployError(f"stack dependency cycle: {' -> '.join((*path, art_id))}")
        if art_id in stacks and stacks[art_id] not in ordered:
            for dep in stacks[art_id].dependencies:
                visit(dep, (*path, art_id))
            ordered.append(stacks[art_id])

    for art_id in stacks:
        visit(art_id, ())
    return ordered


def publish_assets(assets_file: Path, s3: Any) -> list[str]:
    """Upload file assets to their bootstrap bucket; Docker images are noted (workers run as processes)."""
    manifest = json.loads(assets_file.read_text())
    notes = []
    for asset_id, asset in manifest.get("files", {}).items():
        source = assets_file.parent / asset["source"]["path"]
        if source.name.endswith(".template.json"):
            continue  # templates are prepared and uploaded by deploy_stack
        zipped = asset["source"].get("packaging") == "zip" and source.is_dir()
        body = _zip_dir(source) if zipped else source.read_bytes()
        for dest in asset.get("destinations", {}).values():
            bucket = _sub_env(dest["bucketName"])
            _ensure_bucket(s3, bucket)
            s3.put_object(Bucket=bucket, Key=_sub_env(dest["objectKey"]), Body=body)
        notes.append(f"asset {asset_id[:12]}: published to the emulator's S3")
    for asset_id in manifest.get("dockerImages", {}):
        notes.append(f"asset {asset_id[:12]}: Docker image not built (local workers run as processes)")
    return notes


def deploy_stack(stack: StackArtifact, clients: Callable[[str], Any], endpoint: str, image_id: str,
                 modelled: set[str] | None) -> tuple[dict[str, str], list[str], dict[str, tuple[str, str]]]:
    """Create one stack from its prepared template; returns (outputs, notes, deferred physical ids)."""
    cfn, s3 = clients("cloudformation"), clients("s3")
    notes = publish_assets(stack.assets_file, s3) if stack.assets_file else []
    prepared = cfn_prep.prepare(json.loads(stack.template_file.read_text()), stack.name, image_id, modelled)
    notes += prepared.notes
    _ensure_bucket(s3, TEMPLATE_BUCKET)
    key = f"{stack.name}.template.json"
    s3.put_object(Bucket=TEMPLATE_BUCKET, Key=key, Body=json.dumps(prepared.template).encode())
    with logs.timed(log, "created stack", stack=stack.name):
        cfn.create_stack(StackName=stack.name, TemplateURL=f"{endpoint}/{TEMPLATE_BUCKET}/{key}",
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
        described = cfn.describe_stacks(StackName=stack.name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        events = cfn.describe_stack_events(StackName=stack.name)["StackEvents"]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events
                   if "FAILED" in e.get("ResourceStatus", "")]
        raise DeployError(f"stack {stack.name} is {described['StackStatus']}: {reasons}")
    physical = {r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
                for r in cfn.describe_stack_resources(StackName=stack.name)["StackResources"]}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    for name, param in prepared.template.get("Parameters", {}).items():
        parameters.setdefault(name, str(param.get("Default", "")))
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports().get("Exports", [])}
    resolver = cfn_deferred.Resolver(physical, parameters, exports, stack.name)
    notes += cfn_deferred.create(prepared.deferred, resolver, clients)
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in described.get("Outputs", [])}
    return outputs, notes, {d.logical_id: (d.type, d.arn if d.type == cfn_prep.STATE_MACHINE else d.name)
                            for d in prepared.deferred}


def deploy(assembly: Path, clients: Callable[[str], Any], endpoint: str) -> Deployed:
    """Deploy every stack of the assembly; raises DeployError naming the stack and reasons."""
    result = Deployed()
    image_id = local_image_id(clients("ec2"))
    modelled = cfn_prep.modelled_types()
    for stack in stacks_in_order(assembly):
        outputs, notes, deferred = deploy_stack(stack, clients, endpoint, image_id, modelled)
        result.outputs[stack.name] = outputs
        result.deferred[stack.name] = deferred
        result.notes += [f"{stack.name}: {n}" for n in notes]
    for note in result.notes:
        log.info("local deploy: %s", note)
    return result


def local_image_id(ec2: Any) -> str:
    """An AMI the emulator knows, standing in for the Neuron DLAMI the SSM parameter names."""
    images = ec2.describe_images(Owners=["amazon"]).get("Images", [])
    return str(images[0]["ImageId"]) if images else "ami-00000000000000000"


def _sub_env(text: str) -> str:
    return text.replace("${AWS::AccountId}", cfn_prep.ACCOUNT).replace("${AWS::Region}", REGION) \
        .replace("${AWS::Partition}", "aws")


def _ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:  # 404: create it (the bootstrap stack would have, in an account)
        s3.create_bucket(Bucket=bucket)


def _zip_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()
