"""`make demo`'s way out, end to end: the app synthesized with every target enabled and pointed at the
loopback sink, the mixed-format `sources` scenario, HTTP Tasks run in the IAM-enforcing emulator as the
state machine's role, and what the sink (playing Slack, GitHub, Jira, PagerDuty, webhooks) received."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet.local import fleet

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# target name in cdk.json -> the service the sink plays for it (agentfleet/local/outbound.py ROUTES)
PLAYED = {"open_ticket": "github", "file_jira": "jira", "page_oncall": "pagerduty", "post_webhook": "webhook"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("targets")
    return fleet.run(fleet.Options(workers=2, scenario="sources", events=40, out=out / "run", timeout_s=480))


def test_every_action_reaches_its_target_and_nothing_is_refused(run: dict[str, Any]) -> None:
    assert run["denied_calls"] == 0 and run["iam_enforced"]
    assert run["lost_events"] == 0 and run["duplicate_actions"] == 0 and run["missing_actions"] == 0
    assert run["actions_succeeded"] == run["actions_started"] > 0
    deliveries = run["deliveries_by_target"]
    assert all(d["rejected"] == 0 for d in deliveries.values()), deliveries
    succeeded = run["succeeded_by_target"]  # from the audit table's outcome items
    assert deliveries.get("slack", {}).get("accepted", 0) == succeeded.get("notify", 0)  # one chat message each
    for target, service in PLAYED.items():
        assert deliveries.get(service, {}).get("accepted", 0) == succeeded.get(target, 0), target
    assert sum(d["accepted"] for s, d in deliveries.items() if s != "slack") > 0  # some HTTP target was used


def test_responses_are_recorded_in_the_audit_table(run: dict[str, Any]) -> None:
    recorded = run["responses_recorded_by_target"]
    for target in ("open_ticket", "file_jira", "page_oncall"):  # the webhook preset records no response
        service = PLAYED[target]
        assert recorded.get(target, 0) == run["deliveries_by_target"].get(service, {}).get("accepted", 0), target


def test_the_mixed_sources_are_all_decided(run: dict[str, Any]) -> None:
    assert set(run["records_by_adapter"]) >= {"eventbridge", "cloudevents"}
    assert run["quarantined"] == {}  # every default source's event type has a subscriber now
    assert set(run["webhook_responses"]) <= {"202"}
