"""Chat prompts: counting their tokens as the served model's chat template renders them, and the plain
rendering used where a model has no chat template.

A chat prompt is a sequence of (role, content) messages, the stable part first (system prompt, actions,
decision format), then memory and the new events: requests of one agent then share their leading tokens,
which vLLM's prefix cache reuses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from agentfleet.serve.model.base import Message

# Our margin per message for role markers and separators when no tokenizer is at hand (not a measured
# figure: generous, so an estimated prompt stays under budget).
ESTIMATED_TOKENS_PER_MESSAGE = 16


def estimate_tokens(text: str) -> int:
    """Upper-bound token estimate when the served model's tokenizer is not at hand: BPE
    tokenizers average about 4 bytes per token on English, so 3 keeps prompts under budget."""
    return math.ceil(len(text.encode("utf-8")) / 3)


def estimate_message_tokens(messages: Sequence[Message]) -> int:
    return sum(estimate_tokens(content) + ESTIMATED_TOKENS_PER_MESSAGE for _, content in messages) + 8


def plain_render(messages: Sequence[Message]) -> str:
    """A model without a chat template gets the messages' contents back to back: exactly the text prompt
    agentfleet.decide.prompt.build_prompt renders, which the local small model was built for."""
    return "".join(content for _, content in messages)


def render(tokenizer: Any, messages: Sequence[Message], template_kwargs: dict[str, Any] | None = None) -> str:
    """The prompt text the model sees: its chat template with the generation prompt, else plain_render."""
    if not getattr(tokenizer, "chat_template", None):
        return plain_render(messages)
    return str(tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages], tokenize=False,
                                             add_generation_prompt=True, **(template_kwargs or {})))


def chat_counter(tokenizer: Any, template_kwargs: dict[str, Any] | None = None) -> Callable[[Sequence[Message]], int]:
    """Count a chat prompt as the server does: the rendered template tokenized without adding special
    tokens again. transformers' apply_chat_template tokenizes with add_special_tokens=False (transformers
    5.23 tokenization_utils_base.py, read in this venv) and vLLM's chat endpoint defaults to
    add_special_tokens=False, both leaving BOS to the template: BOS is counted exactly once."""
    def count(messages: Sequence[Message]) -> int:
        return len(tokenizer(render(tokenizer, messages, template_kwargs), add_special_tokens=False)["input_ids"])
    return count
