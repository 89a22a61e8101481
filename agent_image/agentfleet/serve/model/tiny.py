"""The small local model: a Llama built in code with a byte-level BPE tokenizer trained in code.

No hub download: the tokenizer is trained on corpus.txt (shipped beside this file) and the
weights come from a seeded init. Guided decoding makes any weights produce valid decisions
(the action is still the model's pick among the allowed ones), so random init is the default.
`finetune_steps` opts into a short fine-tune on synthetic (prompt -> decision) pairs
(finetune.py): ~100 steps give readable messages but not yet event-dependent actions, and
cost 1-2 minutes of CPU, so it is off by default. The saved directory (save_pretrained) is
the CPU engine's "compiled artifact"; the same seed and options give the same files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from agentfleet.ops import logs

_LOG = logs.get(__name__)
CORPUS_PATH = Path(__file__).with_name("corpus.txt")
BOS, EOS, PAD = "<s>", "</s>", "<pad>"
METADATA_FILE = "agentfleet_model.json"


@dataclass(frozen=True)
class TinyShape:
    """Model size: small enough that CPU decode is dominated by per-step overhead, so batching pays."""

    vocab_size: int = 2048  # a target: BPE stops earlier if the corpus runs out of merges
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 4096


def corpus_lines(path: Path = CORPUS_PATH) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def train_tokenizer(lines: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style): any text round-trips, corpus words become few tokens."""
    tok = Tokenizer(models.BPE())
    # No prefix space: decoding a concatenation of token ids must equal the concatenated text,
    # which guided decoding relies on when it forces the JSON skeleton piece by piece.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, clean_up_tokenization_spaces=False
    )


def _llama_config(shape: TinyShape, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_local_model(
    out_dir: Path,
    *,
    seed: int = 0,
    shape: TinyShape = TinyShape(),
    finetune_steps: int = 0,
    finetune: Callable[..., dict[str, float]] | None = None,
    corpus_path: Path = CORPUS_PATH,
) -> Path:
    """Build the tokenizer and model and save both to `out_dir`; returns `out_dir`.

    Written to a temporary sibling and renamed, so a crash never leaves a half-built model
    that a later boot would mistake for a cached one. A model this function built there before is
    replaced; any other non-empty folder is an error.
    `finetune_steps` > 0 runs that many steps of `finetune(model, tokenizer, steps=, seed=)` (local mode
    passes agentfleet.local.finetune.finetune, about 0.5-2 s a step).
    """
    if finetune_steps > 0 and finetune is None:
        raise ValueError("finetune_steps > 0 needs a finetune function (agentfleet.local.finetune.finetune)")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lines = corpus_lines(corpus_path)
    tokenizer = train_tokenizer(lines, shape.vocab_size)
    config = _llama_config(shape, tokenizer)
    with torch.random.fork_rng(devices=[]):  # seed locally: the caller's RNG state is left alone
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        stats: dict[str, float] = {}
        if finetune_steps > 0 and finetune is not None:
            stats = finetune(model, tokenizer, steps=finetune_steps, seed=seed)
    model.eval()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        metadata = {
            "builder": "agentfleet.serve.model.tiny",
            "seed": seed,
            "shape": asdict(shape),
            "vocab_size": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()),
            "corpus_sha256": hashlib.sha256(corpus_path.read_bytes()).hexdigest(),
            "finetune_steps": finetune_steps,
            "finetune": stats,
        }
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True), encoding="utf-8")
        if out_dir.exists():
            if any(out_dir.iterdir()) and not is_built(out_dir):
                raise FileExistsError(f"{out_dir} holds files that build_local_model did not write; not replacing it")
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _LOG.info(
        "local model built",
        extra={
            "path": str(out_dir),
            "seed": seed,
            "parameters": metadata["parameters"],
            "vocab_size": metadata["vocab_size"],
            "finetune_steps": finetune_steps,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return out_dir


def is_built(path: Path) -> bool:
    """True if `path` holds a complete model built by `build_local_model`."""
    return (Path(path) / METADATA_FILE).is_file() and (Path(path) / "config.json").is_file()
