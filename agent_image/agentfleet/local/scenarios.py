"""Shipped event scenarios: a deterministic generator and the loader the local fleet replays.

A scenario is a JSONL file; each line is one of
  - a record exactly as it arrives on the stream (a CloudEvent, an EventBridge event, a kit
    envelope, or anything else: malformed lines are sent verbatim, on purpose), sent with the
    partition key its real producer would use (local/producers.py);
  - {"data_base64": "...", "partition_key": "..."}: binary record bytes (a gzip CloudWatch Logs
    record, a KPL aggregate) and their key, both as the producer wrote them;
  - {"github_webhook": {"event", "delivery", "time", "payload"}}: a GitHub delivery, posted to the
    real webhook handler code, which writes the record (local/github_sim.py).
The shipped files are generated from a fixed seed and committed; `python -m agentfleet.local.scenarios`
rewrites them identically.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentfleet.local.github_sim import LINE_KEY, Delivery
from agentfleet.local.producers import partition_key
from agentfleet.local.scenario_sources import mixed_day

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SPEC_VERSION = "1.0"  # agentfleet.spec.events: the schema version this runtime knows
_START = datetime(2025, 3, 11, 6, 0, tzinfo=UTC)
SERVICES = ("payments-api", "checkout-web", "search-indexer", "auth-service", "billing-worker")
_AUTHORS = ("amara", "bo", "chen", "dario", "eve", "farah")
_INFRA_FILES = ("deploy/helm/values.yaml", "infra/stack.py", ".github/workflows/deploy.yml", "Dockerfile")
_CODE_FILES = ("src/handlers.py", "src/models.py", "tests/test_handlers.py", "README.md", "src/client.ts")
_TESTS = ("test_refund_idempotent", "test_login_rate_limit", "test_search_ranking", "test_invoice_totals",
          "test_cart_merge", "test_token_refresh")
_METRICS = (("Latency", "p99 latency ms", 800.0), ("5XXError", "5xx errors per minute", 20.0),
            ("CPUUtilization", "CPU percent", 85.0), ("ApproximateAgeOfOldestMessage", "queue age s", 300.0))
_FINDINGS = (("HIGH", "S3 bucket allows public read"), ("CRITICAL", "IAM access key exposed in repository"),
             ("LOW", "Security group allows ICMP from 0.0.0.0/0"), ("MEDIUM", "EBS volume not encrypted"),
             ("LOW", "CloudTrail log file validation disabled"))


MALFORMED_KINDS = ("invalid_json", "missing_field", "oversize", "unknown_version", "no_subscriber", "unknown_shape")


BINARY_KEYS = frozenset({"data_base64", "partition_key"})


@dataclass(frozen=True)
class Record:
    """One line of a scenario: the record bytes and the partition key they are sent with, or a GitHub
    delivery for the webhook handler (which then chooses both)."""

    data: bytes
    partition_key: str
    webhook: Delivery | None = None


def parse_line(line: bytes, where: str) -> Record:
    """One scenario line as the Record to send (see the module docstring for the three forms)."""
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if isinstance(doc, dict) and set(doc) == BINARY_KEYS:
        key = doc["partition_key"]
        if not isinstance(key, str) or not 1 <= len(key) <= 256:
            raise ValueError(f"{where}: partition_key must be a string of 1 to 256 characters")
        try:
            data = base64.b64decode(str(doc["data_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{where}: data_base64 is not base64: {exc}") from None
        return Record(data, key)
    if isinstance(doc, dict) and LINE_KEY in doc:
        delivery = Delivery.from_line(doc, where)
        return Record(b"", "", delivery)
    return Record(line, partition_key(line))


def resolve(name_or_path: str) -> Path:
    """A shipped scenario name (`ci-day`) or a path to a JSONL file."""
    path = Path(name_or_path)
    if path.suffix == ".jsonl" or path.exists():
        return path
    shipped = SCENARIO_DIR / f"{name_or_path}.jsonl"
    if not shipped.exists():
        names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.jsonl")))
        raise FileNotFoundError(f"no scenario {name_or_path!r}; shipped scenarios: {names}, or give a .jsonl path")
    return shipped


def load(name_or_path: str, limit: int | None = None) -> list[Record]:
    """The records of a scenario, in file order; blank lines are skipped, `limit` caps the count."""
    records = []
    path = resolve(name_or_path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            records.append(parse_line(line, f"{path}:{number}"))
            if limit is not None and len(records) >= limit:
                break
    return records


class _Day:
    """Builds one day's event stream: story arcs per service, each event stamped in time order."""

    def __init__(self, seed: int, prefix: str) -> None:
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.events: list[dict[str, Any]] = []

    def event(self, kind: str, subject: str, at: datetime, source: str, payload: dict[str, Any]) -> dict[str, Any]:
        event = {"spec_version": SPEC_VERSION, "id": f"{self.prefix}-{len(self.events):05d}", "type": kind,
                 "subject": subject, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "source": source, "payload": payload}
        self.events.append(event)
        return event

    def sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def push_and_build(self, service: str, at: datetime) -> None:
        """A push to main, then CI: mostly green, sometimes a flake that passes on retry, sometimes red."""
        rng, commit = self.rng, self.sha()
        infra = rng.random() < 0.25
        files = rng.sample(_INFRA_FILES if infra else _CODE_FILES, k=rng.randint(1, 3))
        self.event("code.push", service, at, "github", {
            "repository": f"acme/{service}", "branch": "main", "commit": commit,
            "author": rng.choice(_AUTHORS), "message": rng.choice(
                ("bump dependencies", "fix retry loop", "add feature flag", "tune autoscaling", "refactor client")),
            "files_changed": files})
        run = f"{service}-{rng.randint(1000, 9999)}"
        build_at = at + timedelta(minutes=rng.randint(3, 12))
        roll = rng.random()
        if roll < 0.55:
            self._ci("ci.succeeded", service, build_at, run, commit, 1)
        elif roll < 0.8:  # flaky: fails once, passes on retry
            self._ci("ci.failed", service, build_at, run, commit, 1)
            self._ci("ci.succeeded", service, build_at + timedelta(minutes=6), run, commit, 2)
        else:
            self._ci("ci.failed", service, build_at, run, commit, 1)
            self._ci("ci.failed", service, build_at + timedelta(minutes=7), run, commit, 2)

    def _ci(self, kind: str, service: str, at: datetime, run: str, commit: str, attempt: int) -> None:
        payload: dict[str, Any] = {"pipeline": f"{service}/main", "run_id": run, "commit": commit,
                                   "attempt": attempt, "duration_s": self.rng.randint(90, 900)}
        if kind == "ci.failed":
            test = self.rng.choice(_TESTS)
            payload.update(stage=self.rng.choice(("unit", "integration", "lint")), failed_tests=[test],
                           log_excerpt=f"FAILED tests/{test}.py::{test} - AssertionError")
        self.event(kind, service, at, "ci", payload)

    def alarm_episode(self, service: str, at: datetime) -> None:
        """An alarm that fires, sometimes escalates, and returns to OK."""
        metric, unit, threshold = self.rng.choice(_METRICS)
        name = f"{service}-{metric}-high"
        value = round(threshold * self.rng.uniform(1.1, 1.8), 1)
        base = {"alarm_name": name, "metric": metric, "unit": unit, "threshold": threshold, "region": "us-east-1"}
        self.event("cloudwatch.alarm", service, at, "cloudwatch",
                   {**base, "state": "ALARM", "previous_state": "OK", "value": value})
        if self.rng.random() < 0.4:
            self.event("cloudwatch.alarm", service, at + timedelta(minutes=10), "cloudwatch",
                       {**base, "state": "ALARM", "previous_state": "ALARM", "value": round(value * 1.5, 1)})
        self.event("cloudwatch.alarm", service, at + timedelta(minutes=self.rng.randint(15, 50)), "cloudwatch",
                   {**base, "state": "OK", "previous_state": "ALARM", "value": round(threshold * 0.6, 1)})

    def finding(self, service: str, at: datetime) -> None:
        severity, title = self.rng.choice(_FINDINGS)
        self.event("security.finding", service, at, "securityhub", {
            "finding_id": f"arn:aws:securityhub:us-east-1:123456789012:finding/{self.sha()[:12]}",
            "severity": severity, "title": title, "resource": f"arn:aws:s3:::{service}-artifacts"})

    def sorted_events(self) -> list[dict[str, Any]]:
        """Events in time order, renumbered so ids follow that order too."""
        ordered = sorted(self.events, key=lambda e: (e["time"], e["id"]))
        return [{**e, "id": f"{self.prefix}-{i:05d}"} for i, e in enumerate(ordered)]


def ci_day(seed: int = 7, arcs: int = 110) -> list[bytes]:
    """A working day for five services: pushes and their CI runs, alarm episodes, a few findings."""
    day = _Day(seed, "ci-day")
    for _ in range(arcs):
        service = day.rng.choice(SERVICES)
        at = _START + timedelta(minutes=day.rng.randint(0, 12 * 60))
        roll = day.rng.random()
        if roll < 0.7:
            day.push_and_build(service, at)
        elif roll < 0.92:
            day.alarm_episode(service, at)
        else:
            day.finding(service, at)
    return [json.dumps(e, sort_keys=True).encode() for e in day.sorted_events()]


def noisy(seed: int = 11, arcs: int = 70) -> list[bytes]:
    """The same kind of day with one bad record in about six: every malformed kind the runtime must quarantine."""
    day = _Day(seed, "noisy")
    for _ in range(arcs):
        service = day.rng.choice(SERVICES)
        at = _START + timedelta(minutes=day.rng.randint(0, 12 * 60))
        (day.push_and_build if day.rng.random() < 0.75 else day.alarm_episode)(service, at)
    lines = [json.dumps(e, sort_keys=True).encode() for e in day.sorted_events()]
    rng = day.rng
    for i in range(len(lines) // 6):
        kind, where = MALFORMED_KINDS[i % len(MALFORMED_KINDS)], rng.randrange(len(lines) + 1)
        lines.insert(where, malformed(kind, f"noisy-bad-{i:04d}", rng))
    return lines


def malformed(kind: str, event_id: str, rng: random.Random) -> bytes:
    """One bad record of `kind` (a quarantine reason of agentfleet.spec.events / the router)."""
    service = rng.choice(SERVICES)
    good: dict[str, Any] = {"spec_version": SPEC_VERSION, "id": event_id, "type": "ci.failed", "subject": service,
            "time": _START.strftime("%Y-%m-%dT%H:%M:%SZ"), "source": "ci", "payload": {"pipeline": service}}
    if kind == "invalid_json":  # a producer that truncated its write
        return json.dumps(good, sort_keys=True).encode()[: rng.randint(20, 60)]
    if kind == "missing_field":
        del good[rng.choice(("type", "subject", "id", "payload"))]
    elif kind == "oversize":  # records up to Kinesis's 1 MiB are accepted; a subject too big for a key is not
        good["subject"] = f"{service}/" + "\u20ac" * 400  # 400 characters (schema allows 512), 1200+ UTF-8 bytes
    elif kind == "unknown_version":
        good["spec_version"] = ("2.0", "0.9", 1)[rng.randrange(3)]
    elif kind == "no_subscriber":
        good["type"] = rng.choice(("billing.invoice_paid", "hr.employee_onboarded"))
    elif kind == "unknown_shape":  # JSON, but no envelope the adapters know (agentfleet.ingest.adapters)
        return json.dumps({"id": event_id, "service": service, "status": "failed"}, sort_keys=True).encode()
    return json.dumps(good, sort_keys=True).encode()


GENERATORS = {"ci-day": ci_day, "noisy": noisy, "sources": mixed_day}


def write_all(directory: Path = SCENARIO_DIR) -> dict[str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, generate in GENERATORS.items():
        lines = generate()
        (directory / f"{name}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        counts[name] = len(lines)
    return counts


if __name__ == "__main__":
    for scenario, count in write_all().items():
        sys.stdout.write(f"{scenario}: {count} records -> {SCENARIO_DIR / scenario}.jsonl\n")
