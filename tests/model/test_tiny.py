"""The local model: built in code, deterministic from its seed, saved and loaded with transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentfleet.serve.model.tiny import METADATA_FILE, build_local_model, corpus_lines, is_built
from agentfleet.spec.catalog import ACTION_CATALOG


def test_same_seed_same_files_other_seed_other_weights(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_local_model(tmp_path / "again", seed=0)
    other = build_local_model(tmp_path / "other", seed=1)
    assert (again / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()
    first, second, third = (load_file(str(d / "model.safetensors")) for d in (tiny_dir, again, other))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], third[k]) for k in first)
    meta = json.loads((tiny_dir / METADATA_FILE).read_text())
    assert meta["seed"] == 0 and meta["parameters"] > 100_000 and is_built(tiny_dir)


def test_saved_model_loads_with_auto_classes(tiny_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer.encode("ci.failed", add_special_tokens=False)]])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_tokenizer_round_trips_and_knows_the_vocabulary(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    for line in corpus_lines():
        ids = tokenizer.encode(line, add_special_tokens=False)
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == line
    # Byte-level: text never seen in the corpus round-trips too.
    odd = 'Ünïcødé ✓ tabs\tand "quotes" \\ 0.123'
    assert tokenizer.decode(tokenizer.encode(odd, add_special_tokens=False)) == odd
    # Words the agents use all the time cost few tokens.
    for word in [*ACTION_CATALOG, "confidence", "rationale", "ALARM", "severity"]:
        assert len(tokenizer.encode(word, add_special_tokens=False)) <= 3, word
    for event_type in ["ci.failed", "cloudwatch.alarm", "security.finding", "code.push"]:
        assert len(tokenizer.encode(event_type, add_special_tokens=False)) <= 5, event_type
    prose = "The alarm returned to OK and needs no action"
    assert len(tokenizer.encode(prose, add_special_tokens=False)) < len(prose) / 3


def test_refuses_to_replace_a_folder_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_local_model(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
