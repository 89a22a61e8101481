"""Guided decoding for the decision JSON: the model chooses, a state machine keeps it valid.

Output shape (exactly, so every result passes agentfleet.spec.decisions.parse_decision):
  {"action": "<allowed>", "params": {"message": "<text>"}, "rationale": "<text>", "confidence": 0.<d>}
Literal pieces are forced token by token; the action is picked by the model's logits over a
token trie of the request's allowed actions; free text is the model's own tokens restricted
to printable ASCII without quote or backslash, capped in length; digits likewise. When the
token budget would not leave room for the rest, the current field is closed and the
skeleton finished, so the JSON is complete even when cut short.

Per step, the whole batch's allowed-token mask is one gather from a small table of
precomputed vocab masks; Python work per sequence is a few integer comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

LITERALS = ('{"action": "', '", "params": {"message": "', '"}, "rationale": "', '", "confidence": 0.', "}")
# Phases of the skeleton, in order. A field that ends emits the first token of the next literal.
LIT0, ACTION, LIT1, MESSAGE, LIT2, RATIONALE, LIT3, DIGITS, LIT4, DONE = range(10)
_LITERAL_OF = {LIT0: 0, LIT1: 1, LIT2: 2, LIT3: 3, LIT4: 4}
# Rows of the mask table: nothing, text (first token), text-or-end per field, digits, digits-or-end.
_ROW_NONE, _ROW_TEXT_FIRST = 0, 1
_ROW_TEXT_OR_END = {MESSAGE: 2, RATIONALE: 3}
_ROW_DIGIT_FIRST, _ROW_DIGIT = 4, 5


class DecisionVocab:
    """Token tables for one tokenizer: built once per backend, shared by every batch."""

    def __init__(
        self,
        token_texts: Sequence[str],
        special_ids: Sequence[int],
        encode: Callable[[str], list[int]],
        *,
        vocab_size: int | None = None,
        max_text_tokens: int = 24,
        max_digits: int = 2,
    ) -> None:
        """`token_texts[i]` is token i decoded on its own; `vocab_size` is the model's logits
        width when it is wider than the tokenizer (the extra ids are never allowed)."""
        self.encode = encode
        self.max_text_tokens = max_text_tokens
        self.max_digits = max_digits
        self.literals = [encode(text) for text in LITERALS]
        size = max(vocab_size or 0, len(token_texts))
        specials = set(special_ids)
        text_ok = torch.zeros(size, dtype=torch.bool)
        digit = torch.zeros(size, dtype=torch.bool)
        for i, piece in enumerate(token_texts):
            if i in specials or not piece:
                continue
            text_ok[i] = all(32 <= ord(c) < 127 for c in piece) and '"' not in piece and "\\" not in piece
            digit[i] = len(piece) == 1 and piece.isdigit()
        if not text_ok.any() or not digit.any():
            raise ValueError("tokenizer has no plain-text or single-digit tokens; guided decoding cannot run")
        # A text field ends by emitting the first token of the literal after it (quote-led, so
        # never plain text itself); the confidence ends with the closing brace.
        self.end_of = {MESSAGE: self.literals[2][0], RATIONALE: self.literals[3][0]}
        self.close_brace = self.literals[4][0]
        rows = [torch.zeros(size, dtype=torch.bool), text_ok]
        for phase in (MESSAGE, RATIONALE):
            row = text_ok.clone()
            row[self.end_of[phase]] = True
            rows.append(row)
        digit_end = digit.clone()
        digit_end[self.close_brace] = True
        rows += [digit, digit_end]
        self.table = torch.stack(rows)
        # Tokens still to force after a phase ends (the literals after it), for the budget check.
        self._tail = {ph: sum(len(self.literals[_LITERAL_OF[p]]) for p in _LITERAL_OF if p > ph) for ph in range(10)}
        self._tries: dict[tuple[str, ...], dict[tuple[int, ...], list[int]]] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, vocab_size: int | None = None, **options: Any) -> DecisionVocab:
        """Tables for a transformers tokenizer whose decoding is byte-exact per token (byte-level BPE)."""
        texts = [tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in range(len(tokenizer))]

        def encode(text: str) -> list[int]:
            return list(tokenizer.encode(text, add_special_tokens=False))

        vocab = cls(texts, tokenizer.all_special_ids, encode, vocab_size=vocab_size, **options)
        for literal, ids in zip(LITERALS, vocab.literals, strict=True):
            if tokenizer.decode(ids, clean_up_tokenization_spaces=False) != literal:
                raise ValueError(f"tokenizer does not round-trip {literal!r}; guided decoding needs byte-level BPE")
        return vocab

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def minimum_tokens(self, allowed_actions: Sequence[str]) -> int:
        """Fewest tokens a complete decision needs: all literals, the longest action, one digit."""
        longest = max(len(self.encode(a)) for a in allowed_actions)
        return sum(len(lit) for lit in self.literals) + longest + 1

    def trie(self, allowed_actions: tuple[str, ...]) -> dict[tuple[int, ...], list[int]]:
        """prefix of action tokens -> allowed next tokens; a complete name may also take the
        closing literal's first token (-1 marks that)."""
        cached = self._tries.get(allowed_actions)
        if cached is not None:
            return cached
        children: dict[tuple[int, ...], set[int]] = {}
        for action in allowed_actions:
            ids = self.encode(action)
            for k in range(len(ids)):
                children.setdefault(tuple(ids[:k]), set()).add(ids[k])
            children.setdefault(tuple(ids), set()).add(-1)
        trie = {prefix: sorted(nexts) for prefix, nexts in children.items()}
        self._tries[allowed_actions] = trie
        return trie

    def tail_after(self, phase: int) -> int:
        return self._tail[phase]


@dataclass
class _Seq:
    trie: dict[tuple[int, ...], list[int]]
    budget: int
    phase: int = LIT0
    pos: int = 0  # index within the current literal, or tokens in the current field
    action: tuple[int, ...] = ()
    emitted: list[int] = field(default_factory=list)


class GuidedBatch:
    """Per-batch state machines: `step(logits)` picks each sequence's next token."""

    def __init__(self, vocab: DecisionVocab, allowed: Sequence[tuple[str, ...]], budget: int, pad_id: int) -> None:
        for actions in allowed:
            if not actions:
                raise ValueError("every request needs at least one allowed action")
            need = vocab.minimum_tokens(actions)
            if budget < need:
                raise ValueError(f"max_new_tokens={budget} is below the {need} tokens a decision for {actions} needs")
        self.vocab = vocab
        self.pad_id = pad_id
        self.seqs = [_Seq(vocab.trie(tuple(a)), budget) for a in allowed]

    @property
    def done(self) -> bool:
        return all(s.phase == DONE for s in self.seqs)

    def step(self, logits: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 0.0) -> torch.Tensor:
        """Choose one token per sequence from `logits` [batch, vocab]; returns token ids [batch]."""
        plans = [self._plan(s) for s in self.seqs]
        allowed = self.vocab.table[torch.tensor([row for _, row, _ in plans])]
        for i, (_, _, options) in enumerate(plans):
            if options:
                allowed[i, options] = True
        masked = logits.float().masked_fill(~allowed, float("-inf"))
        if temperature > 0:
            probs = torch.softmax(masked / temperature, dim=-1)
            # Forced rows allow nothing (all -inf, NaN after softmax); their pick is overridden.
            probs = torch.nan_to_num(probs, nan=0.0)
            probs[~allowed.any(-1), 0] = 1.0
            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            chosen = masked.argmax(-1)
        forced = torch.tensor([f for f, _, _ in plans])
        chosen = torch.where(forced >= 0, forced, chosen)
        for s, token in zip(self.seqs, chosen.tolist(), strict=True):
            self._advance(s, token)
        return chosen

    def _plan(self, s: _Seq) -> tuple[int, int, list[int]]:
        """(forced token or -1, mask row, extra allowed tokens) for this sequence's next step."""
        vocab = self.vocab
        if s.phase == DONE:
            return self.pad_id, _ROW_NONE, []
        if s.phase in _LITERAL_OF:
            return vocab.literals[_LITERAL_OF[s.phase]][s.pos], _ROW_NONE, []
        left = s.budget - len(s.emitted)
        if s.phase == ACTION:
            options = [vocab.literals[1][0] if t == -1 else t for t in s.trie[s.action]]
            return (options[0] if len(options) == 1 else -1), _ROW_NONE, options
        if s.phase in (MESSAGE, RATIONALE):
            # Ending now costs the literals after this field plus one digit; another text
            # token is allowed only if that still fits afterwards.
            if s.pos >= vocab.max_text_tokens or left - 1 < vocab.tail_after(s.phase) + 1:
                return vocab.end_of[s.phase], _ROW_NONE, []
            return -1, (_ROW_TEXT_FIRST if s.pos == 0 else _ROW_TEXT_OR_END[s.phase]), []
        # DIGITS: at least one digit, then digits or the closing brace.
        if s.pos >= vocab.max_digits or (s.pos > 0 and left - 1 < vocab.tail_after(DIGITS)):
            return vocab.close_brace, _ROW_NONE, []
        return -1, (_ROW_DIGIT_FIRST if s.pos == 0 else _ROW_DIGIT), []

    def _advance(self, s: _Seq, token: int) -> None:
        if s.phase == DONE:
            return
        vocab = self.vocab
        s.emitted.append(token)
        if s.phase in _LITERAL_OF:
            self._enter(s, s.phase, s.pos + 1)
        elif s.phase == ACTION:
            if token == vocab.literals[1][0] and -1 in s.trie[s.action]:
                self._enter(s, LIT1, 1)
            else:
                s.action += (token,)
        elif s.phase in (MESSAGE, RATIONALE):
            if token == vocab.end_of[s.phase]:
                self._enter(s, s.phase + 1, 1)
            else:
                s.pos += 1
        elif token == vocab.close_brace:  # DIGITS
            self._enter(s, LIT4, 1)
        else:
            s.pos += 1

    def _enter(self, s: _Seq, phase: int, pos: int) -> None:
        """Move to `phase` at `pos`, skipping literals already fully emitted."""
        while phase in _LITERAL_OF and pos >= len(self.vocab.literals[_LITERAL_OF[phase]]):
            phase, pos = phase + 1, 0
        s.phase, s.pos = phase, pos

    def completion_ids(self) -> list[list[int]]:
        return [s.emitted for s in self.seqs]


def decision_token_ids(vocab: DecisionVocab, action: str, message: str, rationale: str, digits: str) -> list[int]:
    """The exact tokens GuidedBatch emits for this decision (teacher forcing for fine-tuning).
    Text longer than max_text_tokens is cut, as decoding would cut it."""
    lits = vocab.literals
    cap = vocab.max_text_tokens
    return [
        *lits[0], *vocab.encode(action), *lits[1], *vocab.encode(message)[:cap], *lits[2],
        *vocab.encode(rationale)[:cap], *lits[3], *(vocab.encode(d)[0] for d in digits[: vocab.max_digits]), *lits[4],
    ]
