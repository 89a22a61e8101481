"""TransformersBackend: batched, guided generation with a causal LM on CPU (local mode and tests).

One decode loop per batch: each prompt is prefilled on its own (unpadded), its keys and values
are left-padded into one static cache, then one token per step for the whole batch through
that cache, with the decision grammar (guided.py) choosing each sequence's token from a
vectorized mask. A sequence stops when its JSON closes; the loop stops when all have.
Requests beyond `batch_size` are split into consecutive batches. A request with chat messages is
rendered with the tokenizer's chat template when it has one, else as the plain concatenation of the
messages (serve/model/chat.py: the text prompt the local model was built for); BOS is added once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, StaticCache
from transformers.utils import logging as hf_logging

from agentfleet.ops import logs
from agentfleet.serve.model import chat
from agentfleet.serve.model.base import GenerationRequest, GenerationResult, Message
from agentfleet.serve.model.guided import DecisionVocab, GuidedBatch
from agentfleet.spec.settings import Settings

_LOG = logs.get(__name__)


class TransformersBackend:
    """Implements agentfleet.serve.model.base.ModelBackend with a transformers causal LM."""

    name = "transformers-cpu"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_id: str,
        batch_size: int,
        sequence_length: int,
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        max_text_tokens: int = 24,
    ) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be positive")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        # One position goes to the BOS token that generate() prepends.
        self.max_prompt_tokens = sequence_length - max_new_tokens - 1
        if self.max_prompt_tokens < 16:
            raise ValueError(f"sequence_length={sequence_length} leaves no room for a prompt after {max_new_tokens=}")
        self.temperature = temperature
        self._generator = torch.Generator().manual_seed(seed)
        self._bos = tokenizer.bos_token_id
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.vocab = DecisionVocab.for_tokenizer(tokenizer, model.config.vocab_size, max_text_tokens=max_text_tokens)

    @classmethod
    def from_dir(cls, path: Path, settings: Settings, **options: Any) -> TransformersBackend:
        """Load a saved model directory (e.g. one built by tiny.build_local_model)."""
        started = time.perf_counter()
        torch.set_num_threads(max(1, settings.torch_threads))
        hf_logging.disable_progress_bar()
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        backend = cls(
            model,
            tokenizer,
            model_id=settings.model_id,
            batch_size=settings.batch_size,
            sequence_length=settings.sequence_length,
            max_new_tokens=settings.max_new_tokens,
            **options,
        )
        _LOG.info(
            "model loaded",
            extra={
                "path": str(path),
                "parameters": sum(p.numel() for p in model.parameters()),
                "threads": torch.get_num_threads(),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return backend

    def count_tokens(self, text: str) -> int:
        return self.vocab.count(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Prompt tokens of a chat prompt as this backend renders it (BOS is reserved in max_prompt_tokens)."""
        return self.count_tokens(chat.render(self.tokenizer, messages))

    def _text(self, request: GenerationRequest) -> str:
        return chat.render(self.tokenizer, request.messages) if request.messages else request.prompt

    def generate(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        """Generate one decision per request, in order; more than batch_size requests are split."""
        started = time.perf_counter()
        texts: list[str] = []
        prompt_tokens: list[int] = []
        completion_tokens: list[int] = []
        timings: dict[str, float] = {}
        for first in range(0, len(requests), self.batch_size):
            part = self._generate_batch(requests[first : first + self.batch_size])
            texts += part.texts
            prompt_tokens += part.prompt_tokens
            completion_tokens += part.completion_tokens
            for key, value in part.timings.items():
                timings[key] = timings.get(key, 0.0) + value
        latency_ms = (time.perf_counter() - started) * 1000
        return GenerationResult(texts, prompt_tokens, completion_tokens, latency_ms, timings)

    @torch.inference_mode()
    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> GenerationResult:
        t0 = time.perf_counter()
        encoded = self.tokenizer([self._text(r) for r in requests], add_special_tokens=False)["input_ids"]
        # A chat template may write BOS itself: it is counted and sent once.
        rows = [[self._bos, *(ids[1:] if ids[:1] == [self._bos] else ids)] for ids in encoded]
        for i, ids in enumerate(rows):
            if len(ids) - 1 > self.max_prompt_tokens:
                raise ValueError(
                    f"request {i} has {len(ids) - 1} prompt tokens, more than max_prompt_tokens="
                    f"{self.max_prompt_tokens}; build prompts with this backend's count_tokens"
                )
        guide = GuidedBatch(self.vocab, [r.allowed_actions for r in requests], self.max_new_tokens, self._pad)
        width = max(len(ids) for ids in rows)
        # The mask covers prompt + every generated position up front; a step only flips its
        # column on. With a static (preallocated) cache, decode steps write the KV in place
        # instead of re-concatenating the whole cache, which dominated batch-8 step time.
        total = width + self.max_new_tokens
        attention = torch.zeros((len(rows), total), dtype=torch.long)
        for i, ids in enumerate(rows):  # left padding: every prompt ends at column width-1
            attention[i, width - len(ids) : width] = 1
        t1 = time.perf_counter()

        # Prefill row by row: on CPU a prompt's prefill is compute-bound, so batching it saves
        # nothing, while a padded batch pads every row to the longest and its padding mask takes
        # the unfused attention path (3.6x slower on the local fleet's prompts, see bench/batching.py).
        # Positions are per row (0..len-1) either way; padding slots stay zero and masked.
        logits, keys, values = [], [], []
        for ids in rows:
            row_cache = DynamicCache()
            out = self.model(input_ids=torch.tensor([ids]), past_key_values=row_cache, use_cache=True,
                             logits_to_keep=1)
            logits.append(out.logits[:, -1, :])
            pad = (0, 0, width - len(ids), 0)
            layers: list[Any] = list(row_cache.layers)  # full-attention layers: keys and values are tensors
            keys.append([torch.nn.functional.pad(layer.keys, pad) for layer in layers])
            values.append([torch.nn.functional.pad(layer.values, pad) for layer in layers])
        cache = StaticCache(config=self.model.config, max_cache_len=total)
        for index in range(len(keys[0])):
            cache.update(torch.cat([k[index] for k in keys]), torch.cat([v[index] for v in values]), index)
        last = torch.cat(logits)
        t2 = time.perf_counter()
        steps = 0
        next_pos = torch.tensor([[len(ids)] for ids in rows])
        # The grammar closes every sequence within max_new_tokens, so this loop ends by itself;
        # the bound only turns a grammar bug into an error instead of a hang.
        for steps in range(self.max_new_tokens):
            tokens = guide.step(last, self._generator, self.temperature)
            if guide.done:
                break
            attention[:, width + steps] = 1
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=attention,
                position_ids=next_pos,
                past_key_values=cache,
                use_cache=True,
            )
            last = out.logits[:, -1, :]
            next_pos = next_pos + 1
        if not guide.done:
            raise RuntimeError(f"guided decoding did not close within {self.max_new_tokens} tokens")
        t3 = time.perf_counter()
        completions = guide.completion_ids()
        texts = [self.tokenizer.decode(ids, clean_up_tokenization_spaces=False) for ids in completions]
        t4 = time.perf_counter()
        return GenerationResult(
            texts=texts,
            prompt_tokens=[len(ids) for ids in rows],
            completion_tokens=[len(ids) for ids in completions],
            latency_ms=(t4 - t0) * 1000,
            timings={
                "tokenize_ms": (t1 - t0) * 1000,
                "prefill_ms": (t2 - t1) * 1000,
                "decode_ms": (t3 - t2) * 1000,
                "detokenize_ms": (t4 - t3) * 1000,
                "decode_steps": float(steps),
                "batches": 1.0,
            },
        )

    def close(self) -> None:
        """Nothing to release on CPU; the model goes with the object."""
