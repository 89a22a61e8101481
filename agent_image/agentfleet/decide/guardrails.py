"""Guardrails: what a parsed decision is allowed to become.

Order matters and is fixed: invalid output, then "ignore", then the agent's allowed actions,
then its rate limit, then the target's rate limit, then dry run (global or the target's), then
approval (the agent's or the target's). Each no-op carries a reason so the audit record explains
it. Rate limits are per agent and per target *per worker* (token buckets in memory): a fleet of N
workers allows up to N x rate_limit_per_minute. A disabled target is not a guardrail: its actions
are dispatched and the workflow records them as skipped_target_disabled, as the ASL decides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet.spec.catalog import NO_ACTION, AgentSpec
from agentfleet.spec.targets import TargetRules

DISPATCHED_OUTCOMES = frozenset({"acted", "approval_pending"})


@dataclass(frozen=True)
class Verdict:
    """What happens to one decision: `outcome` is one of metric_names.DECISION_OUTCOMES."""

    outcome: str
    reason: str
    dispatch: bool
    approval_required: bool = False


class TokenBucket:
    """`capacity` tokens, refilled continuously at `rate_per_second`."""

    def __init__(self, capacity: float, rate_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity, self.rate, self._clock = capacity, rate_per_second, clock
        self._tokens, self._at = capacity, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class Guardrails:
    """Turns (agent, decision or invalid reason) into a Verdict."""

    def __init__(self, agents: Iterable[AgentSpec], *, dry_run: bool, targets: Mapping[str, TargetRules] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dry_run = dry_run
        self.targets = dict(targets or {})
        self._buckets = {
            a.name: TokenBucket(a.rate_limit_per_minute, a.rate_limit_per_minute / 60.0, clock) for a in agents
        }
        self._target_buckets = {
            name: TokenBucket(t.rate_limit_per_minute, t.rate_limit_per_minute / 60.0, clock)
            for name, t in self.targets.items() if t.rate_limit_per_minute > 0
        }

    def evaluate(self, agent: AgentSpec, decision: Any, invalid_reason: str = "") -> Verdict:
        """`decision` is an agentfleet.spec.decisions.Decision, or None with `invalid_reason` set."""
        if decision is None:
            return Verdict("invalid_output", invalid_reason or "model output is not a valid decision", False)
        action = decision.action
        if action == NO_ACTION:
            return Verdict("ignored", "the agent decided no action is needed", False)
        if action not in agent.allowed_actions:
            return Verdict("disallowed", f"action {action!r} is not in {agent.name}'s allowed actions "
                           f"{list(agent.allowed_actions)}", False)
        if not self._buckets[agent.name].take():
            return Verdict("rate_limited", f"{agent.name} exceeded {agent.rate_limit_per_minute} actions per minute "
                           "on this worker", False)
        target = self.targets.get(action, TargetRules())
        bucket = self._target_buckets.get(action)
        if bucket is not None and not bucket.take():
            return Verdict("rate_limited", f"target {action!r} exceeded {target.rate_limit_per_minute} actions per "
                           "minute on this worker", False)
        needs_approval = action in agent.approval_required or target.approval_required
        if self.dry_run or target.dry_run:
            what = "would request approval for" if needs_approval else "would take"
            scope = "dry run" if self.dry_run else f"target {action!r} is in dry run"
            return Verdict("dry_run", f"{scope}: {what} {action!r}", False, needs_approval)
        if needs_approval:
            return Verdict("approval_pending", f"{action!r} requires human approval", True, True)
        return Verdict("acted", "", True)
