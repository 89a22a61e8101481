"""The `sources` scenario: a day of real wire formats, as the producers in README's "Sources and
targets" put them on the stream.

Every record starts from a published sample in tests/data/events (sources in SOURCES.md there;
GuardDuty and Security Hub envelopes get their published finding spliced in, as tests/ingest/samples.py
does) and changes only ids, names, subjects, states and times, from a fixed seed:
  EventBridge  CloudWatch alarm (ALARM then OK), CodeBuild build (FAILED/SUCCEEDED), GuardDuty finding,
               Security Hub finding (ASFF and OCSF), ECS task stopped, S3 object created
  CloudEvents  CI results from an external CI system
  Logs         gzip DATA_MESSAGE batches per service log group, and CONTROL_MESSAGE health checks
               (dropped by the workers, counted) -- written as {"data_base64", "partition_key"}
  GitHub       push, workflow_run completed, pull_request opened -- deliveries for the real
               webhook handler (local/github_sim.py), which writes the CloudEvent itself
Generated lines need the repository's tests/data/events; the committed file does not.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentfleet.local.github_sim import Delivery
from agentfleet.local.producers import partition_key

EVENTS = Path(__file__).resolve().parents[3] / "tests" / "data" / "events"  # the repository's samples
SERVICES = ("payments-api", "checkout-web", "search-indexer", "auth-service", "billing-worker")
ACCOUNT, REGION = "123456789012", "us-east-1"
_START = datetime(2025, 3, 11, 6, 0, tzinfo=UTC)
_ERRORS = ("ERROR connection pool exhausted", "ERROR upstream timeout after 30000 ms",
           "WARN retrying request (attempt 3)", "ERROR NullPointerException in handler", "ERROR 503 from dependency")


def sample(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def spliced(envelope: str, placeholder: str, finding: str) -> Any:
    text = (EVENTS / envelope).read_text(encoding="utf-8")
    return json.loads(text.replace(placeholder, (EVENTS / finding).read_text(encoding="utf-8").strip()))


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Mix:
    """Collects (time, line) pairs from the story arcs; `lines` orders them by time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.items: list[tuple[datetime, int, bytes]] = []

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hexid(self, digits: int = 40) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def add(self, at: datetime, line: bytes) -> None:
        self.items.append((at, len(self.items), line))

    def eventbridge(self, at: datetime, event: dict[str, Any], resource: str | None = None) -> None:
        event.update(id=self.uid(), time=iso(at), account=ACCOUNT, region=REGION)
        if resource is not None:
            event["resources"] = [resource]
        self.add(at, json.dumps(event, sort_keys=True).encode())

    def alarm(self, service: str, at: datetime) -> None:
        name = f"{service}-{self.rng.choice(('Latency', '5XXError', 'CPUUtilization'))}-high"
        for state, previous, when in (("ALARM", "OK", at), ("OK", "ALARM", at + timedelta(minutes=self.rng.randint(8, 40)))):
            event = sample("eventbridge_cloudwatch_alarm_state_change.json")
            event["detail"].update(alarmName=name)
            event["detail"]["state"].update(value=state, timestamp=iso(when))
            event["detail"]["previousState"]["value"] = previous
            self.eventbridge(when, event, f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}")

    def codebuild(self, service: str, at: datetime, status: str) -> None:
        event = sample("eventbridge_codebuild_build_state_change.json")
        build = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{service}:{self.uid()}"
        event["detail"].update({"build-status": status, "project-name": service, "build-id": build})
        self.eventbridge(at, event, build)

    def cloudevent(self, service: str, at: datetime, failed: bool) -> None:
        doc = sample("cloudevents_json_object_data.json")
        for extension in ("comexampleextension1", "comexampleothervalue"):
            doc.pop(extension)
        doc.update(type="ci.failed" if failed else "ci.succeeded", source=f"https://ci.example.com/acme/{service}",
                   subject=service, id=self.uid(), time=iso(at),
                   data={"pipeline": f"{service}/main", "run_id": self.rng.randint(1000, 9999),
                         "commit": self.hexid(), "failed_tests": ["test_checkout_total"] if failed else []})
        self.add(at, json.dumps(doc, sort_keys=True).encode())

    def logs(self, service: str, at: datetime, control: bool = False) -> None:
        doc = sample("logs_subscription_data_message.json")
        group, stream = f"/aws/lambda/{service}", f"{at:%Y/%m/%d}/[$LATEST]{self.hexid(32)}"
        stamp = int(at.timestamp() * 1000)
        doc.update(owner=ACCOUNT, logGroup=group, logStream=stream, subscriptionFilters=[f"agentfleet-{service}"])
        if control:  # fields as the Logs guide describes them; no published CONTROL_MESSAGE sample exists
            doc.update(messageType="CONTROL_MESSAGE", logEvents=[])
        else:
            first = self.rng.randrange(10**55, 10**56)  # Logs event ids are 56-digit numbers
            doc["logEvents"] = [{"id": str(first + i), "timestamp": stamp + 40 * i,
                                 "message": f"{iso(at)} {self.rng.choice(_ERRORS)} request_id={self.uid()}"}
                                for i in range(self.rng.randint(1, 4))]
        data = gzip.compress(json.dumps(doc).encode(), mtime=0)  # mtime 0: the file regenerates identically
        key = partition_key(data)
        self.add(at, json.dumps({"data_base64": base64.b64encode(data).decode("ascii"), "partition_key": key}).encode())

    def webhook(self, event: str, payload: dict[str, Any], at: datetime) -> None:
        self.add(at, json.dumps(Delivery(event, self.uid(), iso(at), payload).to_line(), sort_keys=True).encode())

    def github(self, service: str, at: datetime, kind: str, success: bool = True) -> None:
        name = {"push": "github_push_payload.json", "workflow_run": "github_workflow_run_completed_payload.json",
                "pull_request": "github_pull_request_opened_payload.json"}[kind]
        payload = sample(name)
        payload["repository"].update(name=service, full_name=f"acme/{service}")
        if kind == "push":
            payload.update(ref="refs/heads/main", after=self.hexid(), deleted=False)
        elif kind == "workflow_run":
            payload["workflow_run"].update(conclusion="success" if success else "failure", head_sha=self.hexid(),
                                           id=self.rng.randint(10**8, 10**9))
        else:
            payload.update(number=self.rng.randint(10, 999))
        self.webhook(kind, payload, at)

    def finding(self, service: str, at: datetime) -> None:
        kind = self.rng.randrange(3)
        if kind == 0:
            event = spliced("eventbridge_guardduty_finding_envelope.txt", "{GUARDDUTY_FINDING_JSON_OBJECT}",
                            "guardduty_finding_detail_sumologic.json")
            event["detail"].update(id=self.hexid(32), accountId=ACCOUNT, updatedAt=iso(at))
            event["detail"]["resource"]["instanceDetails"]["instanceId"] = f"i-{self.hexid(17)}"
        elif kind == 1:
            event = spliced("eventbridge_securityhub_findings_imported_envelope.txt",
                            "{\n         <finding content>\n       }", "securityhub_asff_finding_fsbp.json")
            finding = event["detail"]["findings"][0]
            finding.update(Id=f"{finding['Id'].rsplit('/', 1)[0]}/{self.uid()}", AwsAccountId=ACCOUNT)
            finding["Resources"][0]["Id"] = f"arn:aws:s3:::{service}-artifacts"
        else:
            event = sample("eventbridge_securityhub_findings_imported_v2_ocsf.json")
            finding = event["detail"]["findings"][0]
            finding["finding_info"]["uid"] = f"{finding['finding_info']['uid'].rsplit('/', 1)[0]}/{self.hexid(32)}"
            finding["resources"][0]["uid"] = f"ASIA{self.hexid(16).upper()}"
        self.eventbridge(at, event)

    def operations(self, service: str, at: datetime) -> None:
        task = sample("eventbridge_ecs_task_state_change.json")
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{service}/{self.hexid(32)}"
        task["detail"].update(taskArn=arn, lastStatus="STOPPED", desiredStatus="STOPPED")
        self.eventbridge(at, task, arn)
        s3 = sample("eventbridge_s3_object_created.json")
        s3["detail"]["bucket"]["name"] = f"{service}-artifacts"
        s3["detail"]["object"]["key"] = f"releases/{self.hexid(12)}.tar.gz"
        self.eventbridge(at + timedelta(minutes=1), s3, f"arn:aws:s3:::{service}-artifacts")

    def lines(self) -> list[bytes]:
        return [line for _, _, line in sorted(self.items)]


def mixed_day(seed: int = 13, arcs: int = 40) -> list[bytes]:
    """Story arcs per service: a push and its CI (GitHub + CodeBuild or an external CI's CloudEvent),
    alarm episodes with the service's error logs, findings, task stops and uploads, health checks."""
    mix = _Mix(seed)
    for _ in range(arcs):
        service, at = mix.rng.choice(SERVICES), _START + timedelta(minutes=mix.rng.randint(0, 12 * 60))
        roll, ok = mix.rng.random(), mix.rng.random() < 0.6
        if roll < 0.4:
            mix.github(service, at, "push")
            build_at = at + timedelta(minutes=mix.rng.randint(3, 12))
            if mix.rng.random() < 0.5:
                mix.github(service, build_at, "workflow_run", success=ok)
            else:
                mix.codebuild(service, build_at, "SUCCEEDED" if ok else "FAILED")
            mix.cloudevent(service, build_at + timedelta(minutes=1), failed=not ok)
        elif roll < 0.65:
            mix.alarm(service, at)
            mix.logs(service, at + timedelta(seconds=30))
        elif roll < 0.8:
            mix.finding(service, at)
        elif roll < 0.92:
            mix.operations(service, at)
        else:
            mix.github(service, at, "pull_request")
    for hour in (0, 6):  # CloudWatch Logs checks the destination now and then
        mix.logs(SERVICES[0], _START + timedelta(hours=hour), control=True)
    return mix.lines()
