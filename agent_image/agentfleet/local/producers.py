"""The partition key each real producer gives a record, so a replayed scenario lands on the shards
(and in the per-shard order) it would have in AWS.

- Kit envelope and CloudEvents (a producer of our own or the GitHub webhook handler): the subject,
  or the CloudEvent's source when it has none -- the ordering key the adapters derive.
- EventBridge rule -> Kinesis target: the value at the target's KinesisParameters.PartitionKeyPath,
  "the JSON path to be extracted from the event and used as the partition key. If you do not include
  this parameter, the default is to use the eventId" (EventBridge API Reference, KinesisParameters).
  PARTITION_KEY_PATHS are the EventBridge rules' own paths (agentfleet.spec.sources.PRESETS, what synth
  puts in each rule's KinesisParameters). Other detail-types: the event id (EventBridge's default).
- CloudWatch Logs subscription -> Kinesis stream: the default distribution is ByLogStream ("log
  data is grouped by log stream", PutSubscriptionFilter API Reference, `distribution`). The key
  Logs writes is not documented; both records of the published capture (aws-powertools/
  powertools-lambda-python @ fa1c29f2, tests/events/kinesisStreamCloudWatchLogsEvent.json,
  copied to tests/data/events/powertools_kinesis_stream_cloudwatch_logs_event.json) have
  partitionKey = MD5 hex of "<owner>:<logGroup>:<logStream>" (tests/local/test_producers.py
  checks it against that capture). That rule is inferred from one capture, not a documented
  contract.
- Anything unparseable: a digest of the bytes (a producer that wrote garbage still picked a key).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from typing import Any

from agentfleet.spec.sources import PRESETS

# (source, detail-type) -> the PartitionKeyPath of that preset's rule target (dotted JSON path).
# The EventBridge rules' paths, from the one table synth uses (agentfleet.spec.sources.PRESETS).
PARTITION_KEY_PATHS: dict[tuple[str, str], str] = {
    (rule.source, rule.detail_type): rule.partition_key_path for rules in PRESETS.values() for rule in rules}
_MAX_KEY = 256  # Kinesis PutRecord: PartitionKey is 1-256 Unicode characters


def json_path(doc: Any, path: str) -> str:
    """The string at a JSON path in dot notation with array indices ("$.detail.findings[0].Resources[0].Id",
    the syntax spec.sources accepts); "" when it is missing or not a string."""
    node = doc
    for step in path.removeprefix("$.").split("."):
        name, *indices = step.split("[")
        node = node.get(name) if isinstance(node, dict) else None
        for index in (int(i.rstrip("]")) for i in indices):
            node = node[index] if isinstance(node, list) and -len(node) <= index < len(node) else None
    return node if isinstance(node, str) else ""


def eventbridge_key(event: dict[str, Any]) -> str:
    path = PARTITION_KEY_PATHS.get((str(event.get("source")), str(event.get("detail-type"))))
    return (json_path(event, path) if path else "") or str(event.get("id", ""))


def logs_key(doc: dict[str, Any]) -> str:
    joined = f"{doc.get('owner', '')}:{doc.get('logGroup', '')}:{doc.get('logStream', '')}"
    return hashlib.md5(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def partition_key(data: bytes) -> str:
    """The key the record's real producer would have sent it with (see the module docstring)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return _digest(data)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _digest(data)
    if not isinstance(doc, dict):
        return _digest(data)
    if "messageType" in doc and "logGroup" in doc:
        key = logs_key(doc)
    elif "specversion" in doc:
        key = _text(doc, "subject") or _text(doc, "source")
    elif "spec_version" in doc:
        key = _text(doc, "subject")
    elif "detail-type" in doc and "source" in doc:
        key = eventbridge_key(doc)
    else:
        key = ""
    return key[:_MAX_KEY] if key else _digest(data)


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    return value if isinstance(value, str) else ""


def _digest(data: bytes) -> str:
    return "unparsed-" + hashlib.sha256(data).hexdigest()[:16]
