"""Render one agent's prompt: system prompt, allowed actions, decision format, memory, new events.

The stable part comes first (system prompt, actions, format: the same for every request of an agent, so
a model server's prefix cache keeps it), then memory, then the new events. `build_messages` returns it as
chat messages (system = the stable part, user = memory + events) for backends that apply the served
model's chat template, measured with that template (`count_messages`); `build_prompt` returns the same
text as one string (what a model without a chat template sees).

The prompt must fit `max_prompt_tokens` as counted by the serving model's own tokenizer.
What gives way, in order: memory (oldest items first), then the payload text of the new
events (each cut to the same length, with a note). Events themselves - id, type, subject -
are never dropped: they are what the agent is asked to decide about.

`observations` and `past_decisions` come oldest first; items carrying an "at" timestamp are
merged into one timeline by it, so the globally oldest memory goes first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentfleet.ops import logs
from agentfleet.serve.model.base import GenerationRequest, ModelBackend
from agentfleet.spec.catalog import ACTION_CATALOG, AgentSpec

_LOG = logs.get(__name__)
_EVENT_KEYS = ("id", "type", "subject")  # always shown, never truncated
_EVENT_OPTIONAL = ("time", "source")  # shown beside them when the event has them
_EVENT_HIDDEN = ("spec_version",)  # envelope detail the agent has no use for

# The instruction comes before the data and the prompt ends right after the events, so the
# facts that decide the action sit next to it (small models attend locally far more easily).
DECISION_FORMAT = (
    "### Decision format\n"
    "Decide on the new events below. Reply with one JSON object and nothing else, in this form:\n"
    '{"action": "<one of the allowed actions>", "params": {"message": "<short message>"}, '
    '"rationale": "<why, in one sentence>", "confidence": 0.<digits>}\n\n'
)
DECISION_CUE = "Decision:\n"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)


def _header(agent: AgentSpec) -> str:
    actions = "\n".join(f"- {a}: {ACTION_CATALOG.get(a, a)}" for a in agent.allowed_actions)
    return f'### System\nYou are the agent "{agent.name}". {agent.system_prompt}\n\n### Allowed actions\n{actions}\n\n'


def _payload_text(event: Mapping[str, Any]) -> str:
    # Everything but the identifying keys is payload: no field of an event is silently lost.
    skip = {*_EVENT_KEYS, *_EVENT_OPTIONAL, *_EVENT_HIDDEN}
    payload = event["payload"] if "payload" in event else {k: v for k, v in event.items() if k not in skip}
    return _compact(payload)


def _events_block(events: Sequence[Mapping[str, Any]], payloads: Sequence[str], cap: int | None) -> str:
    lines = [f"### New events ({len(events)})"]
    for i, (event, payload) in enumerate(zip(events, payloads, strict=True), start=1):
        ident = " ".join(f"{key}={event.get(key, '')}" for key in _EVENT_KEYS)
        ident += "".join(f" {key}={event[key]}" for key in _EVENT_OPTIONAL if event.get(key))
        lines.append(f"event {i}: {ident}")
        if cap is not None and len(payload) > cap:
            lines.append(f"payload: {payload[:cap]}...")
            lines.append(f"(payload truncated to {cap} of {len(payload)} characters to fit the token budget)")
        else:
            lines.append(f"payload: {payload}")
    return "\n".join(lines) + "\n\n"


def _memory_block(items: Sequence[str], omitted: int) -> str:
    lines = ["### Memory (oldest first)"]
    if omitted:
        lines.append(f"({omitted} older memory items omitted to fit the token budget)")
    lines.extend(items)
    if not items and not omitted:
        lines.append("(no memory yet)")
    return "\n".join(lines) + "\n\n"


def _timeline(
    observations: Sequence[Mapping[str, Any]], past_decisions: Sequence[Mapping[str, Any]]
) -> list[tuple[str, Mapping[str, Any]]]:
    items = [("observation", o) for o in observations] + [("decision", d) for d in past_decisions]
    if all("at" in item for _, item in items):
        items.sort(key=lambda pair: str(pair[1]["at"]))  # stable: ties keep their given order
    return items


def build_prompt(
    agent: AgentSpec,
    events: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
    past_decisions: Sequence[Mapping[str, Any]],
    count_tokens: Callable[[str], int],
    max_prompt_tokens: int,
) -> str:
    """The prompt for `agent` to decide on `events`, within `max_prompt_tokens` where possible.

    If even the header, event ids and the format instruction exceed the budget, the prompt is
    returned over budget (with a warning log): the backend then rejects it loudly rather than
    the agent deciding on events it cannot see.
    """
    system, user = _fit(agent, events, observations, past_decisions,
                        lambda parts: count_tokens(parts[0] + parts[1]), max_prompt_tokens)
    return system + user


def build_messages(
    agent: AgentSpec,
    events: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
    past_decisions: Sequence[Mapping[str, Any]],
    count_messages: Callable[[Sequence[tuple[str, str]]], int],
    max_prompt_tokens: int,
) -> tuple[tuple[str, str], ...]:
    """The same prompt as chat messages ((role, content): system, then user), fitted to the budget as the
    served model's chat template counts it (template tokens and BOS included)."""
    system, user = _fit(agent, events, observations, past_decisions,
                        lambda parts: count_messages((("system", parts[0]), ("user", parts[1]))), max_prompt_tokens)
    return (("system", system), ("user", user))


def _fit(
    agent: AgentSpec,
    events: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
    past_decisions: Sequence[Mapping[str, Any]],
    measure: Callable[[tuple[str, str]], int],
    max_prompt_tokens: int,
) -> tuple[str, str]:
    """(stable system part, memory + events) within the budget as `measure` counts it."""
    system = _header(agent) + DECISION_FORMAT
    payloads = [_payload_text(e) for e in events]
    # Each memory item is serialized once; the budget search below only re-joins lines.
    memory = [f"{kind}: {_compact(item)}" for kind, item in _timeline(observations, past_decisions)]
    full_events = _events_block(events, payloads, None)

    def render(kept: int, cap: int | None) -> tuple[str, str]:
        omitted = len(memory) - kept
        events_text = full_events if cap is None else _events_block(events, payloads, cap)
        return system, _memory_block(memory[omitted:], omitted) + events_text + DECISION_CUE

    # The common case: everything fits, one tokenizer call.
    everything = render(len(memory), None)
    if measure(everything) <= max_prompt_tokens:
        return everything
    # Memory: keep the newest `kept` items; the largest kept that fits wins. Token counts
    # are monotone in kept, so a binary search needs O(log n) tokenizer calls.
    if measure(render(0, None)) <= max_prompt_tokens:
        lo, hi = 0, len(memory) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if measure(render(mid, None)) <= max_prompt_tokens:
                lo = mid
            else:
                hi = mid - 1
        return render(lo, None)

    # Events alone are too big: no memory, and cut every payload to the largest common length.
    longest = max((len(p) for p in payloads), default=0)
    lo, hi = 0, longest
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(render(0, mid)) <= max_prompt_tokens:
            lo = mid
        else:
            hi = mid - 1
    prompt = render(0, lo)
    tokens = measure(prompt)
    if tokens > max_prompt_tokens:
        _LOG.warning(
            "prompt over budget even with empty payloads",
            extra={"agent": agent.name, "events": len(events), "tokens": tokens, "budget": max_prompt_tokens},
        )
    else:
        _LOG.info(
            "event payloads truncated to fit the prompt budget",
            extra={"agent": agent.name, "events": len(events), "payload_chars": lo, "budget": max_prompt_tokens},
        )
    return prompt


def request_for(
    agent: AgentSpec,
    events: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
    past_decisions: Sequence[Mapping[str, Any]],
    backend: ModelBackend,
    *,
    subject: str = "",
) -> GenerationRequest:
    """The GenerationRequest for one (agent, subject): chat messages fitted with the backend's chat template
    when it counts them (`count_messages`), else the text prompt; the affinity key is agent/subject, so
    one pair keeps its replica (and that replica's cached prefix) while an agent's subjects spread out."""
    count_messages = getattr(backend, "count_messages", None)
    key = f"{agent.name}/{subject}" if subject else agent.name
    if count_messages is None:
        prompt = build_prompt(agent, events, observations, past_decisions, backend.count_tokens,
                              backend.max_prompt_tokens)
        return GenerationRequest(prompt, agent.allowed_actions, affinity_key=key)
    messages = build_messages(agent, events, observations, past_decisions, count_messages, backend.max_prompt_tokens)
    return GenerationRequest("".join(content for _, content in messages), agent.allowed_actions,
                             affinity_key=key, messages=messages)
