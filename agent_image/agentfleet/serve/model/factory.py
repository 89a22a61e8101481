"""create_backend: the one place that turns Settings.engine into a ModelBackend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from agentfleet.ops import logs
from agentfleet.serve.model.base import Message, ModelBackend
from agentfleet.spec.catalog import ConfigError
from agentfleet.spec.settings import Settings

_LOG = logs.get(__name__)
ENGINES = ("transformers-cpu", "openai-http", "optimum-neuron", "vllm-neuron")


def local_model_path(settings: Settings) -> Path:
    """Where the transformers-cpu model lives: local_model_dir, else under the compile cache."""
    return Path(settings.local_model_dir) if settings.local_model_dir else Path(settings.compile_cache_dir) / "tiny-llama"


def create_backend(settings: Settings) -> ModelBackend:
    """Build the backend named by `settings.engine`; heavy imports happen only in its branch."""
    engine = settings.engine
    if engine == "transformers-cpu":
        from agentfleet.serve.model.cpu import TransformersBackend
        from agentfleet.serve.model.tiny import build_local_model

        path = local_model_path(settings)
        if not (path / "config.json").is_file():  # any saved causal LM there (ours or a user's) is loaded as is
            # The boot normally builds it; building here keeps a bare local run working.
            _LOG.info("no local model yet, building it", extra={"path": str(path)})
            build_local_model(path)
        return TransformersBackend.from_dir(path, settings)
    if engine == "openai-http":
        from agentfleet.serve.model.openai_http import OpenAIHTTPBackend

        # Several replicas: comma-separated base URLs, routed by affinity key (serve/model/routing.py).
        urls = [u.strip() for u in settings.openai_base_url.split(",") if u.strip()] or [settings.openai_base_url]
        count_tokens, count_messages = _served_tokenizer(settings)
        return OpenAIHTTPBackend(
            urls,
            settings.model_id,
            batch_size=settings.batch_size,
            max_prompt_tokens=settings.sequence_length - settings.max_new_tokens,
            max_new_tokens=settings.max_new_tokens,
            max_num_seqs=settings.max_num_seqs,
            count_tokens=count_tokens,
            count_messages=count_messages,
        )
    if engine in ("optimum-neuron", "vllm-neuron"):
        # Neuron backends load the artifacts the boot sequence fetched or compiled (compile cache).
        from agentfleet.serve.boot.load import load_backend

        return load_backend(settings)
    raise ConfigError(f"engine must be one of {list(ENGINES)}, got {engine!r}")


def _served_tokenizer(settings: Settings) -> tuple[Callable[[str], int], Callable[[Sequence[Message]], int]]:
    """Text and chat token counters: the served model's tokenizer (and its chat template) if it is already
    on disk (no download), else upper-bound estimates."""
    from agentfleet.serve.model.chat import chat_counter, estimate_message_tokens, estimate_tokens

    try:
        from transformers import AutoTokenizer

        source = settings.local_model_dir or settings.model_id
        tokenizer = AutoTokenizer.from_pretrained(source, revision=settings.model_revision, local_files_only=True)
    except Exception as exc:  # any failure means "not available here"; the estimate is safe
        _LOG.info("served tokenizer not on disk; estimating prompt tokens", extra={"reason": str(exc)[:200]})
        return estimate_tokens, estimate_message_tokens

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count, chat_counter(tokenizer)
