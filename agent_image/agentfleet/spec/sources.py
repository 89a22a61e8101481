"""The `sources` config section: which producers the CDK app wires to the stream.

    {"eventbridge": ["alarms", ...],            presets below (rules on the default event bus)
     "custom": [{"source": ..., "detail_type": ..., "partition_key_path": "$.account"}],
     "log_groups": ["/aws/lambda/app", {"name": ..., "filter_pattern": ...}],
     "github_webhook": {"enabled": false, "secret_name": "", "reserved_concurrency": 5}}

Every preset's (source, detail-type) is one agentfleet.ingest.adapters.eventbridge_services RULES
key (tests/cdk/test_sources.py keeps them equal), so each delivered event gets its typed kit event.
The partition key path picks the field the adapter takes the subject from, or a coarser one that is
the same for every event of one subject (so one subject's events still share a shard), and only
fields every event of that detail-type carries. EventBridge's JSON path syntax (EventBridge User
Guide, "Amazon EventBridge input transformation", supported syntax: dot notation, dashes, array
indices); partition key path at most 256 characters (botocore events 2015-10-07
TargetPartitionKeyPath max 256). Without a path EventBridge uses the event id (EventBridge API
Reference, KinesisParameters): no order at all, so every rule here sets one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentfleet.spec.catalog import ConfigError


@dataclass(frozen=True)
class EventRule:
    """One EventBridge rule: the event's source and detail-type, and the stream's partition key path."""

    source: str
    detail_type: str
    partition_key_path: str


# Source and detail-type as the services publish them (the published samples in tests/data/events,
# sources in SOURCES.md there). Paths: the adapter's subject field where every event carries it.
PRESETS: dict[str, tuple[EventRule, ...]] = {
    # CloudWatch User Guide, "Alarm events and EventBridge": detail.alarmName
    "alarms": (EventRule("aws.cloudwatch", "CloudWatch Alarm State Change", "$.detail.alarmName"),),
    # CodeBuild User Guide, "Build notifications input format reference": detail.project-name
    "codebuild": (EventRule("aws.codebuild", "CodeBuild Build State Change", "$.detail.project-name"),),
    # CodePipeline User Guide, "Monitoring CodePipeline events": detail.pipeline
    "codepipeline": (EventRule("aws.codepipeline", "CodePipeline Pipeline Execution State Change",
                               "$.detail.pipeline"),),
    # The adapter's subject falls back across instance, access key, bucket and account, so no one
    # field holds it; the finding's account (GuardDuty API Reference, Finding: AccountId, required)
    # is the same for every finding about one resource.
    "guardduty": (EventRule("aws.guardduty", "GuardDuty Finding", "$.detail.accountId"),),
    # ASFF: Resources (and each resource's Id) are required attributes (Security Hub User Guide,
    # "Required top-level attributes in ASFF"). OCSF: resources may be absent, and `account` is in
    # every EventBridge event's envelope (EventBridge User Guide, "Events"): coarser, same per subject.
    "securityhub": (EventRule("aws.securityhub", "Security Hub Findings - Imported", "$.detail.findings[0].Resources[0].Id"),
                    EventRule("aws.securityhub", "Findings Imported V2", "$.account")),
    # ECS Developer Guide, "Task state change events": detail.taskArn
    "ecs": (EventRule("aws.ecs", "ECS Task State Change", "$.detail.taskArn"),),
    # S3 "Object Created" (bucket with EventBridge notifications on): the adapter's subject is
    # bucket/key, which no single field holds; the bucket is the same for every event of one object.
    "s3": (EventRule("aws.s3", "Object Created", "$.detail.bucket.name"),),
}
DEFAULT_CUSTOM_KEY_PATH = "$.account"  # a custom rule without a path: one account's events in order
_KEY_PATH = re.compile(r"^\$(\.[A-Za-z0-9_\-/]+(\[\d+\])*)+$")  # dot notation, dashes, array indices
_LOG_GROUP = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")  # botocore logs 2014-03-28 LogGroupName
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")  # botocore secretsmanager CreateSecret Name
FILTER_PATTERN_MAX = 1024  # botocore logs 2014-03-28 FilterPattern max


@dataclass(frozen=True)
class LogGroupSource:
    """A CloudWatch Logs group subscribed to the stream; "" = every log event."""

    name: str
    filter_pattern: str = ""


@dataclass(frozen=True)
class WebhookSource:
    """The GitHub webhook function (off by default: it needs a secret the owner creates)."""

    enabled: bool = False
    secret_name: str = ""
    reserved_concurrency: int = 5


@dataclass(frozen=True)
class SourcesConfig:
    """The parsed `sources` section; `rules` is every EventBridge rule to create, presets first."""

    eventbridge: tuple[str, ...]
    custom: tuple[EventRule, ...]
    log_groups: tuple[LogGroupSource, ...]
    github_webhook: WebhookSource

    @property
    def rules(self) -> tuple[EventRule, ...]:
        return tuple(rule for name in self.eventbridge for rule in PRESETS[name]) + self.custom


def parse_sources(raw: Any, key: str = "sources") -> SourcesConfig:
    """Validate the section (a dict, or its JSON text from `-c sources=...`); errors name the key."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key} must be a JSON object: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{key} must be an object with eventbridge, custom, log_groups, github_webhook")
    unknown = set(raw) - {"eventbridge", "custom", "log_groups", "github_webhook"}
    if unknown:
        raise ConfigError(f"{key} has unknown keys {sorted(unknown)}; allowed: eventbridge, custom, "
                          f"log_groups, github_webhook")
    presets = _list(raw.get("eventbridge", []), f"{key}.eventbridge")
    for name in presets:
        if name not in PRESETS:
            raise ConfigError(f"{key}.eventbridge has {name!r}; presets: {', '.join(PRESETS)}")
    if len(set(presets)) != len(presets):
        raise ConfigError(f"{key}.eventbridge lists a preset twice")
    custom = tuple(_custom(item, f"{key}.custom[{i}]")
                   for i, item in enumerate(_list(raw.get("custom", []), f"{key}.custom")))
    groups = tuple(_log_group(item, f"{key}.log_groups[{i}]")
                   for i, item in enumerate(_list(raw.get("log_groups", []), f"{key}.log_groups")))
    if len({g.name for g in groups}) != len(groups):
        raise ConfigError(f"{key}.log_groups names a log group twice")
    config = SourcesConfig(tuple(presets), custom, groups, _webhook(raw.get("github_webhook", {}), f"{key}.github_webhook"))
    pairs = [(rule.source, rule.detail_type) for rule in config.rules]
    for pair in pairs:
        if pairs.count(pair) > 1:
            raise ConfigError(f"{key}.custom repeats source {pair[0]!r} / detail_type {pair[1]!r}, which a preset or "
                              f"another custom rule already sends to the stream")
    return config


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    return value


def _object(value: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object with {', '.join(allowed)}, got {value!r}")
    unknown = set(value) - set(allowed)
    if unknown:
        raise ConfigError(f"{key} has unknown keys {sorted(unknown)}; allowed: {', '.join(allowed)}")
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _custom(item: Any, key: str) -> EventRule:
    item = _object(item, key, ("source", "detail_type", "partition_key_path"))
    source, detail_type = _text(item.get("source"), f"{key}.source"), _text(item.get("detail_type"), f"{key}.detail_type")
    if not source or not detail_type:
        raise ConfigError(f"{key} needs a non-empty source and detail_type")
    path = _text(item.get("partition_key_path", DEFAULT_CUSTOM_KEY_PATH), f"{key}.partition_key_path")
    if len(path) > 256 or not _KEY_PATH.match(path):
        raise ConfigError(f"{key}.partition_key_path must be a JSON path like '$.detail.name' (dot notation, "
                          f"array indices, at most 256 characters), got {path!r}")
    return EventRule(source, detail_type, path)


def _log_group(item: Any, key: str) -> LogGroupSource:
    if isinstance(item, str):
        item = {"name": item}
    item = _object(item, key, ("name", "filter_pattern"))
    name, pattern = _text(item.get("name"), f"{key}.name"), _text(item.get("filter_pattern", ""), f"{key}.filter_pattern")
    if not _LOG_GROUP.match(name):
        raise ConfigError(f"{key}.name must be a log group name (1-512 of A-Z a-z 0-9 . - _ / #), got {name!r}")
    if len(pattern) > FILTER_PATTERN_MAX:
        raise ConfigError(f"{key}.filter_pattern is longer than {FILTER_PATTERN_MAX} characters")
    return LogGroupSource(name, pattern)


def _webhook(item: Any, key: str) -> WebhookSource:
    item = _object(item, key, ("enabled", "secret_name", "reserved_concurrency"))
    enabled, name = item.get("enabled", False), _text(item.get("secret_name", ""), f"{key}.secret_name")
    concurrency = item.get("reserved_concurrency", WebhookSource.reserved_concurrency)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{key}.enabled must be true or false, got {enabled!r}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
        raise ConfigError(f"{key}.reserved_concurrency must be an integer >= 0 (0 = no reservation), got {concurrency!r}")
    if enabled and not name:
        raise ConfigError(f"{key}.enabled needs {key}.secret_name (the Secrets Manager secret holding the "
                          f"webhook secret)")
    if name and not _SECRET_NAME.match(name):
        raise ConfigError(f"{key}.secret_name must be a Secrets Manager name (1-512 of A-Z a-z 0-9 / _ + = . @ -), "
                          f"got {name!r}")
    return WebhookSource(enabled, name, concurrency)
