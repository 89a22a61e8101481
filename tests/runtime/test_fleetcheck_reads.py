"""The fleet check's reads, against fakes shaped like the service answers (botocore 1.44.8 models):
decisions fetched by the keys the runtime gives them (BatchGetItem with UnprocessedKeys resent, only
pending keys asked again, a timeout), the Auto Scaling group's InService instances, and the config
document found through the fleet stack's output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentfleet.act.dispatch import decision_id
from agentfleet.entrypoints import fleetcheck_events as ev
from agentfleet.entrypoints.fleetcheck_aws import decision_keys, in_service, resolve_settings, wait_for_decisions
from agentfleet.ops.ddb import to_item
from agentfleet.spec.catalog import ConfigError


class AuditTable:
    """BatchGetItem as DynamoDB answers it: the stored items among the keys asked for (`visible` of the
    stored ones so far), and the first request's last key handed back once as UnprocessedKeys."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items, self.visible = items, 0
        self.requests: list[list[str]] = []
        self.unprocessed_once = True

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        asked = [k["pk"]["S"] for k in request["Keys"]]
        self.requests.append(asked)
        unprocessed = {}
        if self.unprocessed_once and len(asked) > 1:
            self.unprocessed_once = False
            unprocessed = {table: {"Keys": [{"pk": {"S": asked[-1]}}]}}
            asked = asked[:-1]
        stored = {i["pk"]: i for i in self.items[:self.visible]}
        return {"Responses": {table: [to_item(stored[k]) for k in asked if k in stored]}, "UnprocessedKeys": unprocessed}


def test_decisions_are_fetched_by_the_keys_the_runtime_gives_them() -> None:
    sent = [ev.Sent("e1", "shardId-000000000001", "495", 1.0), ev.Sent("e2", "shardId-000000000000", "496", 1.0)]
    expected = {("e1", "triage"), ("e1", "watcher"), ("e2", "alarms")}
    keys = decision_keys(sent, expected)
    assert keys == {f"decision#{decision_id('triage', 'shardId-000000000001', '495')}": ("e1", "triage"),
                    f"decision#{decision_id('watcher', 'shardId-000000000001', '495')}": ("e1", "watcher"),
                    f"decision#{decision_id('alarms', 'shardId-000000000000', '496')}": ("e2", "alarms")}
    table = AuditTable([{"pk": pk, "agent": pair[1], "event_ids": [pair[0]]} for pk, pair in keys.items()])
    now = [0.0]

    def sleep(seconds: float) -> None:  # time passes; one more decision lands each poll
        now[0] += seconds
        table.visible += 1 if seconds >= 1.0 else 0

    found = wait_for_decisions(table, "audit", keys, 60.0, poll_s=2.0, clock=lambda: now[0], sleep=sleep)
    assert set(found) == expected and now[0] == pytest.approx(6.1)  # 3 polls + one resend of an unprocessed key
    assert [len(r) for r in table.requests] == [3, 1, 3, 2, 1]  # only keys not found yet are asked again


def test_waiting_gives_up_at_the_timeout_with_what_it_has() -> None:
    keys = {"decision#a": ("e1", "triage"), "decision#b": ("e2", "alarms")}
    table = AuditTable([{"pk": "decision#a", "agent": "triage"}])
    table.visible, table.unprocessed_once = 1, False
    now = [0.0]
    found = wait_for_decisions(table, "audit", keys, 5.0, poll_s=2.0, clock=lambda: now[0],
                               sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert set(found) == {("e1", "triage")} and now[0] == 5.0


class Groups:
    def __init__(self, instances: list[dict[str, str]]) -> None:
        self.instances = instances

    def describe_auto_scaling_groups(self, AutoScalingGroupNames: list[str]) -> dict[str, Any]:
        return {"AutoScalingGroups": [{"AutoScalingGroupName": AutoScalingGroupNames[0], "Instances": self.instances}]}


def test_only_in_service_instances_count_and_their_types_are_known() -> None:
    got = in_service(Groups([{"InstanceType": "trn2.48xlarge", "LifecycleState": "InService"},
                             {"InstanceType": "trn2.48xlarge", "LifecycleState": "Pending:Wait"},
                             {"InstanceType": "trn3.48xlarge", "LifecycleState": "InService"},
                             {"InstanceType": "", "LifecycleState": "InService"}]), "g")
    assert (got.count, got.types) == (3, {"trn2.48xlarge": 1, "trn3.48xlarge": 1})
    assert got.note == "1 InService instances report no InstanceType"
    assert in_service(Groups([]), "").note.startswith("the config document names no Auto Scaling group")


AGENT = {"name": "triage", "system_prompt": "p", "subscribes_to": ["ci.*"], "allowed_actions": ["ignore"]}


class Stacks:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.asked: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.asked.append(StackName)
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


class Parameters:
    def get_parameter(self, Name: str) -> dict[str, Any]:
        doc = {"fleet_name": "team-a", "stream_name": "s", "audit_table": "t", "agents": [AGENT]}
        return {"Parameter": {"Name": Name, "Value": json.dumps(doc)}}


def test_the_config_document_comes_from_the_fleet_stack_or_a_file(tmp_path: Path) -> None:
    cfn = Stacks({"RuntimeConfigParameter": "/agentfleet/team-a/runtime-config", "StreamName": "x"})
    settings, where = resolve_settings(cfn, Parameters(), "team-a")
    assert cfn.asked == ["team-a-fleet"] and where.startswith("ssm:/agentfleet/team-a/runtime-config")
    assert (settings.fleet_name, settings.audit_table, [a.name for a in settings.agents]) == ("team-a", "t", ["triage"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"stream_name": "local", "agents": [AGENT]}))
    assert resolve_settings(None, None, "ignored", str(path))[0].stream_name == "local"
    with pytest.raises(ConfigError, match="no output RuntimeConfigParameter"):
        resolve_settings(Stacks({"StreamName": "x"}), Parameters(), "team-a")
