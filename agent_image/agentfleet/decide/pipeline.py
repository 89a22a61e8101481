"""One batch of work items through the model and on to an action: the decision pipeline.

memory -> prompt -> one batched generate -> parse -> guardrails -> audit (write-ahead)
-> action (at most once) -> memory. Runs on the worker's batch thread; each finished item
is reported through `done` right away, so a shutdown deadline keeps whatever finished.
Failures never escape: an item that hit an I/O error is returned for a retry; a model
that keeps failing on an item turns it into an explained no-op (invalid_output). Poison never
stalls a shard: an item whose failure no retry can fix (ops/retry.is_permanent: a
ValidationException, a number DynamoDB cannot store, ...) or that failed MAX_ATTEMPTS times of
any kind ends as a recorded `failed` decision whose reason explains it, with the record's bytes
kept in S3 (act/audit.AuditLog.record_failure), and is acknowledged so the checkpoint moves on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agentfleet.act.audit import AuditLog, DecisionRecord, iso_now
from agentfleet.act.dispatch import ActionRequest, Dispatcher
from agentfleet.decide.batcher import WorkItem
from agentfleet.decide.guardrails import DISPATCHED_OUTCOMES, Guardrails
from agentfleet.decide.memory import Memory, MemoryStore
from agentfleet.decide.prompt import build_prompt
from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.ops.retry import explain, is_permanent
from agentfleet.serve.model.base import GenerationRequest, ModelBackend
from agentfleet.spec import metric_names
from agentfleet.spec.decisions import Decision, InvalidDecision, parse_decision

log = logs.get(__name__)
MODEL_ATTEMPTS = 3  # a batch failing this often in a row marks its items invalid_output, so no shard stalls
MAX_ATTEMPTS = 5  # any other failure: the 5th in a row records the item as failed (requeue delays 0.5..8 s)
FAILED = "failed"


class DecisionPipeline:
    """Stateless apart from its collaborators; `run` handles one batch."""

    def __init__(self, *, backend: ModelBackend, memory: MemoryStore, audit: AuditLog, dispatcher: Dispatcher,
                 guardrails: Guardrails, metrics: Metrics, worker_id: str, batch_size: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.backend, self.memory, self.audit, self.dispatcher = backend, memory, audit, dispatcher
        self.guardrails, self.metrics, self.worker_id, self.batch_size = guardrails, metrics, worker_id, batch_size
        self._clock = clock

    def run(self, items: Sequence[WorkItem], done: Callable[[WorkItem], None],
            cancel: threading.Event) -> list[WorkItem]:
        """Handle `items`; returns those to retry later. Stops between items once `cancel` is set."""
        retry: list[WorkItem] = []
        ready: list[tuple[WorkItem, Memory, str]] = []
        for item in items:
            try:
                memory = self.memory.load(item.agent.name, item.event.subject)
                prompt = build_prompt(item.agent, [item.event.to_json()], memory.observations, memory.decisions,
                                      self.backend.count_tokens, self.backend.max_prompt_tokens)
                ready.append((item, memory, prompt))
            except Exception as exc:
                log.warning("preparing prompt failed", extra={"decision_id": item.decision_id, "error": repr(exc)})
                self._failed(item, exc, done, retry)
        if not ready or cancel.is_set():
            return retry + [item for item, _, _ in ready]
        started = time.perf_counter()
        try:
            result = self.backend.generate([GenerationRequest(p, item.agent.allowed_actions) for item, _, p in ready])
            if len(result.texts) != len(ready):
                raise RuntimeError(f"backend returned {len(result.texts)} outputs for {len(ready)} prompts")
        except Exception as exc:
            log.error("model call failed", extra={"batch": len(ready), "error": f"{type(exc).__name__}: {exc}"})
            failed = [(item, memory) for item, memory, _ in ready if item.attempts + 1 < MODEL_ATTEMPTS]
            retry.extend(item for item, _ in failed)
            for item, memory, _ in ready:
                if item.attempts + 1 >= MODEL_ATTEMPTS and not cancel.is_set():
                    self._finish(item, memory, None, f"model_error: {type(exc).__name__}: {exc}"[:500],
                                 0.0, 0, 0, done, retry)
            return retry
        latency_ms = result.latency_ms or (time.perf_counter() - started) * 1000
        self.metrics.observe(metric_names.INFERENCE_LATENCY_MS, latency_ms, "Milliseconds")
        self.metrics.observe(metric_names.TOKENS_PER_SECOND, result.tokens_per_second, "Count/Second")
        self.metrics.count(metric_names.GENERATED_TOKENS, float(sum(result.completion_tokens)))
        self.metrics.observe(metric_names.BATCH_FILL_PERCENT, 100.0 * len(ready) / self.batch_size, "Percent")
        for index, (item, memory, _) in enumerate(ready):
            if cancel.is_set():
                retry.append(item)
                continue
            text = result.texts[index]
            self._finish(item, memory, text, "", latency_ms, _at(result.prompt_tokens, index),
                         _at(result.completion_tokens, index), done, retry)
        return retry

    def _finish(self, item: WorkItem, memory: Memory, text: str | None, model_error: str, latency_ms: float,
                prompt_tokens: int, completion_tokens: int, done: Callable[[WorkItem], None],
                retry: list[WorkItem]) -> None:
        try:
            self._decide(item, memory, text, model_error, latency_ms, prompt_tokens, completion_tokens)
        except Exception as exc:
            log.warning("handling decision failed", extra={
                "decision_id": item.decision_id, "error": f"{type(exc).__name__}: {exc}"})
            self._failed(item, exc, done, retry)
            return
        done(item)

    def _failed(self, item: WorkItem, exc: BaseException, done: Callable[[WorkItem], None],
                retry: list[WorkItem]) -> None:
        """Retry a failure that may pass; record one that cannot (or that kept coming back) and move on."""
        if not is_permanent(exc) and item.attempts + 1 < MAX_ATTEMPTS:
            retry.append(item)
            return
        reason = explain(exc) if is_permanent(exc) else f"gave up after {item.attempts + 1} attempts: {explain(exc)}"
        record = DecisionRecord(
            decision_id=item.decision_id, agent=item.agent.name, subject=item.event.subject,
            event_ids=(item.event.id,), shard_id=item.shard_id, sequence_number=item.sequence_number,
            model=self.backend.model_id, outcome=FAILED, reason=reason[:500], worker_id=self.worker_id,
            at=iso_now(self._clock), sub_sequence_number=item.sub_sequence, partition_key=item.partition_key)
        try:
            self.audit.record_failure(record, item.raw or json.dumps(item.event.to_json()).encode())
        except Exception as again:
            log.warning("recording a failed item failed; will retry", extra={
                "decision_id": item.decision_id, "error": f"{type(again).__name__}: {again}"})
            retry.append(item)
            return
        self.metrics.count(metric_names.DECISIONS, **{metric_names.OUTCOME: FAILED})
        done(item)

    def _decide(self, item: WorkItem, memory: Memory, text: str | None, model_error: str, latency_ms: float,
                prompt_tokens: int, completion_tokens: int) -> None:
        decision: Decision | None = None
        invalid = model_error
        if text is not None:
            try:
                decision = parse_decision(text)
            except InvalidDecision as exc:
                invalid = f"{exc.reason}: {exc.message}"[:500]
        verdict = self.guardrails.evaluate(item.agent, decision, invalid)
        record = DecisionRecord(
            decision_id=item.decision_id, agent=item.agent.name, subject=item.event.subject,
            event_ids=(item.event.id,), shard_id=item.shard_id, sequence_number=item.sequence_number,
            model=self.backend.model_id, outcome=verdict.outcome, reason=verdict.reason,
            action=decision.action if decision else "", params=decision.params if decision else {},
            rationale=decision.rationale if decision else "", confidence=decision.confidence if decision else 0.0,
            approval_required=verdict.approval_required, latency_ms=round(latency_ms, 1),
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, worker_id=self.worker_id,
            at=iso_now(self._clock), sub_sequence_number=item.sub_sequence,
        )
        stored, fresh = self.audit.record_decision(record)
        if not fresh:
            log.info("decision replayed; the recorded one stands", extra={
                "decision_id": item.decision_id, "recorded_outcome": stored.outcome, "rederived": verdict.outcome})
        if stored.outcome in DISPATCHED_OUTCOMES and not stored.execution_arn:
            arn, started = self.dispatcher.start(ActionRequest(
                stored.decision_id, stored.agent, stored.subject, stored.action, stored.params, stored.rationale,
                stored.approval_required, stored.event_ids))
            self.audit.set_execution(stored.decision_id, arn)
            if started:
                self.metrics.count(metric_names.ACTIONS_DISPATCHED)
        observation = {"at": item.event.utc_time(), "event_id": item.event.id, "type": item.event.type,
                       "source": item.event.source, "payload": dict(item.event.payload)}
        summary = {"at": stored.at, "decision_id": stored.decision_id, "event_id": item.event.id,
                   "action": stored.action, "outcome": stored.outcome, "rationale": stored.rationale}
        self.memory.record(memory, observation, summary)
        if fresh:
            self.metrics.count(metric_names.DECISIONS, **{metric_names.OUTCOME: stored.outcome})
        log.info("decision", extra={"decision_id": stored.decision_id, "agent": stored.agent,
                                    "subject": stored.subject, "event_id": item.event.id, "outcome": stored.outcome,
                                    "action": stored.action, "reason": stored.reason, "replay": not fresh})


def _at(values: Sequence[Any], index: int) -> int:
    return int(values[index]) if index < len(values) else 0
