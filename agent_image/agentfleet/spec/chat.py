"""The `chat` config section: optional Slack / Microsoft Teams channels on the notify and approval topics.

    {"slack": [{"workspace_id": "T0123ABCD", "channel_id": "C0123ABCD"}],
     "teams": [{"team_id": "<uuid>", "channel_id": "19:...@thread.tacv2", "tenant_id": "<uuid>"}]}

The workspace or team must already be authorized in the Amazon Q Developer in chat applications
(AWS Chatbot) console; the channels then render the notify topic's custom notifications. IDs are
only checked to be non-empty and free of whitespace: their exact formats are the service's to judge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet.spec.catalog import ConfigError

_ID = re.compile(r"^\S{1,256}$")
_FIELDS = {"slack": ("workspace_id", "channel_id"), "teams": ("team_id", "channel_id", "tenant_id")}


@dataclass(frozen=True)
class ChatConfig:
    """Chat channels; each entry is a tuple of its fields in _FIELDS order."""

    slack: tuple[tuple[str, str], ...] = ()
    teams: tuple[tuple[str, str, str], ...] = ()


def parse_chat(raw: Any, key: str = "chat") -> ChatConfig:
    """Validate the section; {} (the default) means no chat channels."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be an object with optional lists slack and teams")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{key} has unknown keys {unknown}; allowed: slack, teams")
    parsed: dict[str, list[tuple[str, ...]]] = {}
    for platform, names in _FIELDS.items():
        entries = raw.get(platform, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{key}.{platform} must be a list of channels")
        parsed[platform] = []
        for i, entry in enumerate(entries):
            where = f"{key}.{platform}[{i}]"
            if not isinstance(entry, Mapping) or set(entry) != set(names):
                raise ConfigError(f"{where} must be an object with exactly {', '.join(names)}")
            for name in names:
                if not isinstance(entry[name], str) or not _ID.match(entry[name]):
                    raise ConfigError(f"{where}.{name} must be a non-empty id without spaces, got {entry[name]!r}")
            parsed[platform].append(tuple(entry[name] for name in names))
    return ChatConfig(tuple(parsed["slack"]), tuple(parsed["teams"]))  # type: ignore[arg-type]
