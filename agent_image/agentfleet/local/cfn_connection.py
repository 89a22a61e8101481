"""AWS::Events::Connection and AWS::SecretsManager::Secret for the emulator, whose CloudFormation models
neither (moto 5.2.5 cloudformation/parsing.py model map): created through their APIs after the stack, the
connection's Secrets Manager dynamic references resolved first, as CloudFormation would."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agentfleet.local.cfn_prep import Deferred

_DYNAMIC = re.compile(r"\{\{resolve:secretsmanager:(?P<id>arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+|[^:}]+)"
                      r"(?::SecretString)?(?::(?P<key>[^:}]*))?(?::(?P<stage>[^:}]*))?(?::(?P<version>[^:}]*))?\}\}")


def _dynamic(clients: Callable[[str], Any], node: Any) -> Any:
    """Resolve Secrets Manager dynamic references ({{resolve:secretsmanager:ID:SecretString:KEY:STAGE:VERSION}},
    CloudFormation User Guide "Get values stored in other services using dynamic references"), as
    CloudFormation does before calling the service; the emulator's CloudFormation never sees these properties."""
    if isinstance(node, list):
        return [_dynamic(clients, v) for v in node]
    if isinstance(node, dict):
        return {k: _dynamic(clients, v) for k, v in node.items()}
    if not isinstance(node, str) or "{{resolve:secretsmanager:" not in node:
        return node

    def value(match: re.Match[str]) -> str:
        extra = {k: v for k, v in (("VersionStage", match["stage"]), ("VersionId", match["version"])) if v}
        text = clients("secretsmanager").get_secret_value(SecretId=match["id"], **extra)["SecretString"]
        return str(json.loads(text)[match["key"]]) if match["key"] else str(text)

    return _DYNAMIC.sub(value, node)


def create(clients: Callable[[str], Any], props: dict[str, Any], item: Deferred) -> None:
    """An EventBridge connection: moto's CreateConnection also creates its Secrets Manager secret."""
    extra = {"Description": props["Description"]} if "Description" in props else {}
    clients("events").create_connection(Name=item.name, AuthorizationType=props["AuthorizationType"],
                                        AuthParameters=_dynamic(clients, props["AuthParameters"]), **extra)


def create_secret(clients: Callable[[str], Any], props: dict[str, Any], item: Deferred) -> None:
    """SecretString as given, or GenerateSecretString (AWS::SecretsManager::Secret GenerateSecretString:
    a random password, placed under GenerateStringKey of SecretStringTemplate when both are given)."""
    sm = clients("secretsmanager")
    text = props.get("SecretString")
    if text is None:
        spec = props.get("GenerateSecretString") or {}
        options = {k: v for k, v in spec.items() if k in (
            "PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation", "ExcludeUppercase",
            "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType")}
        password = sm.get_random_password(**options)["RandomPassword"]
        if "SecretStringTemplate" in spec and "GenerateStringKey" in spec:
            text = json.dumps({**json.loads(spec["SecretStringTemplate"]), spec["GenerateStringKey"]: password})
        else:
            text = password
    extra = {"Description": props["Description"]} if "Description" in props else {}
    sm.create_secret(Name=item.name, SecretString=str(text), **extra)
