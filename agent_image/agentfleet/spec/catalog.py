"""Agents and the action catalog: one definition shared by the CDK config and the runtime.

An agent is configuration, not code. The CDK app validates the `agents` context key with
`parse_agents` at synth time; the runtime parses the same JSON at start, so a definition
that synthesizes is one the runtime accepts.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The built-in actions. Every target in the `targets` config section (agentfleet.spec.targets) is an
# action too; the actions state machine routes on these names (agentfleet.spec.actions_asl).
# "ignore" is a decision not to act and is never dispatched.
ACTION_CATALOG: Mapping[str, str] = {
    "notify": "publish a message to the fleet's notification topic (chat-ready)",
    "ignore": "decide to take no action (recorded, never dispatched)",
}
NO_ACTION = "ignore"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.\-/*]{0,99}$")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and the allowed values."""


@dataclass(frozen=True)
class AgentSpec:
    """One agent: what it listens to, what it may do and how often."""

    name: str
    system_prompt: str
    subscribes_to: tuple[str, ...]
    allowed_actions: tuple[str, ...]
    rate_limit_per_minute: int
    approval_required: tuple[str, ...] = ()
    priority: int = 0  # higher first when more items are eligible than the model has free slots
    shed_after_seconds: float = 0.0  # > 0: an item older than this (read -> now) is recorded `shed`, not sent

    def subscribes(self, event_type: str) -> bool:
        """True if this agent wants events of `event_type` ("ci.*" matches "ci.failed")."""
        for pattern in self.subscribes_to:
            if pattern == event_type or pattern == "*":
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "system_prompt": self.system_prompt,
            "subscribes_to": list(self.subscribes_to),
            "allowed_actions": list(self.allowed_actions),
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "approval_required": list(self.approval_required),
            "priority": self.priority,
            "shed_after_seconds": self.shed_after_seconds,
        }


def _str_list(raw: Any, key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise ConfigError(f"{key} must be a list of non-empty strings, got {raw!r}")
    return tuple(raw)


def parse_agent(raw: Any, key: str, targets: Collection[str] = ()) -> AgentSpec:
    """Validate one agent definition; `key` (e.g. "agents[2]") prefixes every error.
    `targets`: the names of the configured HTTP targets, actions beside the built-in ones."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be an object, got {type(raw).__name__}")
    allowed_keys = {"name", "system_prompt", "subscribes_to", "allowed_actions",
                    "rate_limit_per_minute", "approval_required", "priority", "shed_after_seconds"}
    unknown = sorted(set(raw) - allowed_keys)
    if unknown:
        raise ConfigError(f"{key} has unknown keys {unknown}; allowed: {sorted(allowed_keys)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{key}.name must match {_NAME.pattern} (lowercase, digits, '-'), got {name!r}")
    prompt = raw.get("system_prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{key}.system_prompt must be a non-empty string")
    subscribes = _str_list(raw.get("subscribes_to"), f"{key}.subscribes_to")
    if not subscribes:
        raise ConfigError(f"{key}.subscribes_to must name at least one event type")
    for pattern in subscribes:
        if not _EVENT_TYPE.match(pattern):
            raise ConfigError(f"{key}.subscribes_to has invalid event type {pattern!r}")
    actions = _str_list(raw.get("allowed_actions"), f"{key}.allowed_actions")
    for action in actions:
        if action not in ACTION_CATALOG and action not in targets:
            raise ConfigError(
                f"{key}.allowed_actions has {action!r}, neither a built-in action nor a configured target; "
                f"allowed: {sorted({*ACTION_CATALOG, *targets})}"
            )
    approval = _str_list(raw.get("approval_required", []), f"{key}.approval_required")
    for action in approval:
        if action not in actions:
            raise ConfigError(
                f"{key}.approval_required has {action!r}, which is not in its allowed_actions {list(actions)}"
            )
        if action == NO_ACTION:
            raise ConfigError(f"{key}.approval_required cannot include {NO_ACTION!r}")
    rate = raw.get("rate_limit_per_minute", 60)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ConfigError(f"{key}.rate_limit_per_minute must be a positive integer, got {rate!r}")
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigError(f"{key}.priority must be an integer (higher goes first), got {priority!r}")
    shed = raw.get("shed_after_seconds", 0)
    if isinstance(shed, bool) or not isinstance(shed, int | float) or not 0 <= shed < float("inf"):
        raise ConfigError(f"{key}.shed_after_seconds must be a number >= 0 (0 = never shed), got {shed!r}")
    return AgentSpec(name, prompt, subscribes, actions, rate, approval, priority, float(shed))


def parse_agents(raw: Any, key: str = "agents", targets: Collection[str] = ()) -> tuple[AgentSpec, ...]:
    """Validate a list of agent definitions: each one valid, names unique, at least one."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{key} must be a non-empty list of agent definitions")
    agents = tuple(parse_agent(item, f"{key}[{i}]", targets) for i, item in enumerate(raw))
    seen: set[str] = set()
    for agent in agents:
        if agent.name in seen:
            raise ConfigError(f"{key} has duplicate agent name {agent.name!r}; agent names must be unique")
        seen.add(agent.name)
    return agents


def subscribers(agents: Iterable[AgentSpec], event_type: str) -> list[AgentSpec]:
    """The agents subscribed to `event_type`, in definition order."""
    return [agent for agent in agents if agent.subscribes(event_type)]
