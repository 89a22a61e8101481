"""One work item from memory to action: the decision pipeline, in three steps.

prepare (memory load -> prompt) -> send (one model request) -> finish (parse -> guardrails ->
audit write-ahead -> action, at most once -> memory). decide/sender.py runs prepare and send on
sender threads and finish on an I/O pool, so post-decision writes never hold up the model.
Failures never escape a step's caller: an item that hit an I/O error is retried; a model that
keeps failing on an item turns it into an explained no-op (invalid_output). Poison never stalls
a shard: an item whose failure no retry can fix (ops/retry.is_permanent: a ValidationException,
a number DynamoDB cannot store, ...) or that failed MAX_ATTEMPTS times of any kind ends as a
recorded `failed` decision whose reason explains it, with the record's bytes kept in S3
(act/audit.AuditLog.record_failure), and is acknowledged so the checkpoint moves on. An item
its agent sheds (older than shed_after_seconds) ends as a recorded `shed` decision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agentfleet.act.audit import AuditLog, DecisionRecord, iso_now
from agentfleet.act.dispatch import ActionRequest, Dispatcher
from agentfleet.decide.guardrails import DISPATCHED_OUTCOMES, Guardrails
from agentfleet.decide.memory import Memory, MemoryStore
from agentfleet.decide.prompt import request_for
from agentfleet.decide.scheduler import WorkItem
from agentfleet.ops import logs
from agentfleet.ops.metrics import Metrics
from agentfleet.ops.retry import explain, is_permanent
from agentfleet.serve.model.base import GenerationRequest, ModelBackend
from agentfleet.spec import metric_names
from agentfleet.spec.decisions import Decision, InvalidDecision, parse_decision

log = logs.get(__name__)
MODEL_ATTEMPTS = 3  # a request failing this often in a row marks its item invalid_output, so no shard stalls
MAX_ATTEMPTS = 5  # any other failure: the 5th in a row records the item as failed (requeue delays 0.5..8 s)
FAILED = "failed"
SHED = "shed"


@dataclass(frozen=True)
class Completion:
    """The model's answer to one item's request (text None: the model failed; model_error says how)."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    model_error: str = ""


class DecisionPipeline:
    """Stateless apart from its collaborators; each step handles one item and may run on any thread."""

    def __init__(self, *, backend: ModelBackend, memory: MemoryStore, audit: AuditLog, dispatcher: Dispatcher,
                 guardrails: Guardrails, metrics: Metrics, worker_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.backend, self.memory, self.audit, self.dispatcher = backend, memory, audit, dispatcher
        self.guardrails, self.metrics, self.worker_id, self._clock = guardrails, metrics, worker_id, clock

    def prepare(self, item: WorkItem) -> tuple[Memory, GenerationRequest]:
        """The pair's memory (written by its predecessor) and its request (chat messages where the backend
        counts them, affinity key agent/subject); raises on I/O errors."""
        memory = self.memory.load(item.agent.name, item.event.subject)
        request = request_for(item.agent, [item.event.to_json()], memory.observations, memory.decisions,
                              self.backend, subject=item.event.subject)
        return memory, request

    def send(self, item: WorkItem, request: GenerationRequest) -> Completion | None:
        """One request; None means "retry later" (the model failed, attempts are left)."""
        started = time.perf_counter()
        try:
            result = self.backend.generate([request])
            if len(result.texts) != 1:
                raise RuntimeError(f"backend returned {len(result.texts)} outputs for 1 prompt")
        except Exception as exc:
            log.error("model call failed", extra={"decision_id": item.decision_id, "attempt": item.attempts + 1,
                                                  "error": f"{type(exc).__name__}: {exc}"})
            if item.attempts + 1 < MODEL_ATTEMPTS:
                return None
            return Completion(None, model_error=f"model_error: {type(exc).__name__}: {exc}"[:500])
        latency_ms = result.latency_ms or (time.perf_counter() - started) * 1000
        completion = Completion(result.texts[0], _first(result.prompt_tokens), _first(result.completion_tokens),
                                latency_ms)
        self.metrics.observe(metric_names.INFERENCE_LATENCY_MS, latency_ms, "Milliseconds")
        self.metrics.observe(metric_names.TOKENS_PER_SECOND, result.tokens_per_second, "Count/Second")
        self.metrics.count(metric_names.GENERATED_TOKENS, float(completion.completion_tokens))
        return completion

    def finish(self, item: WorkItem, memory: Memory, completion: Completion) -> bool:
        """Decide and act; True when the item is handled (acknowledge it), False to retry it."""
        try:
            self._decide(item, memory, completion)
        except Exception as exc:
            log.warning("handling decision failed", extra={
                "decision_id": item.decision_id, "error": f"{type(exc).__name__}: {exc}"})
            return self.failed(item, exc)
        return True

    def failed(self, item: WorkItem, exc: BaseException) -> bool:
        """Retry (False) a failure that may pass; record one that cannot (or that kept coming back): True."""
        if not is_permanent(exc) and item.attempts + 1 < MAX_ATTEMPTS:
            return False
        reason = explain(exc) if is_permanent(exc) else f"gave up after {item.attempts + 1} attempts: {explain(exc)}"
        try:
            self.audit.record_failure(self._record(item, FAILED, reason),
                                      item.raw or json.dumps(item.event.to_json()).encode())
        except Exception as again:
            log.warning("recording a failed item failed; will retry", extra={
                "decision_id": item.decision_id, "error": f"{type(again).__name__}: {again}"})
            return False
        self.metrics.count(metric_names.DECISIONS, **{metric_names.OUTCOME: FAILED})
        return True

    def shed(self, item: WorkItem, age_seconds: float) -> bool:
        """Record an item its agent sheds; True when recorded (acknowledge it), False to retry the write."""
        reason = (f"shed: waited {age_seconds:.1f} s since it was read, over the agent's "
                  f"shed_after_seconds {item.agent.shed_after_seconds:g}")
        try:
            # Its bytes are kept like a failed item's, so a shed event can be looked at or put back (requeue).
            where = self.audit.keep(item.shard_id, item.sequence_number, item.sub_sequence,
                                    item.raw or json.dumps(item.event.to_json()).encode())
            record = replace(self._record(item, SHED, reason), payload_s3=where)
            stored, fresh = self.audit.record_decision(record)
        except Exception as exc:
            log.warning("recording a shed item failed", extra={
                "decision_id": item.decision_id, "error": f"{type(exc).__name__}: {exc}"})
            return self.failed(item, exc)
        if fresh:
            self.metrics.count(metric_names.ITEMS_SHED, **{metric_names.AGENT: item.agent.name})
            self.metrics.count(metric_names.DECISIONS, **{metric_names.OUTCOME: SHED})
        log.info("decision", extra={"decision_id": stored.decision_id, "agent": stored.agent, "outcome": stored.outcome,
                                    "subject": stored.subject, "reason": stored.reason, "replay": not fresh})
        return True

    def _record(self, item: WorkItem, outcome: str, reason: str) -> DecisionRecord:
        return DecisionRecord(
            decision_id=item.decision_id, agent=item.agent.name, subject=item.event.subject,
            event_ids=(item.event.id,), shard_id=item.shard_id, sequence_number=item.sequence_number,
            model=self.backend.model_id, outcome=outcome, reason=reason[:500], worker_id=self.worker_id,
            at=iso_now(self._clock), sub_sequence_number=item.sub_sequence, partition_key=item.partition_key)

    def _decide(self, item: WorkItem, memory: Memory, done: Completion) -> None:
        decision: Decision | None = None
        invalid = done.model_error
        if done.text is not None:
            try:
                decision = parse_decision(done.text)
            except InvalidDecision as exc:
                invalid = f"{exc.reason}: {exc.message}"[:500]
        verdict = self.guardrails.evaluate(item.agent, decision, invalid)
        record = DecisionRecord(
            decision_id=item.decision_id, agent=item.agent.name, subject=item.event.subject,
            event_ids=(item.event.id,), shard_id=item.shard_id, sequence_number=item.sequence_number,
            model=self.backend.model_id, outcome=verdict.outcome, reason=verdict.reason,
            action=decision.action if decision else "", params=decision.params if decision else {},
            rationale=decision.rationale if decision else "", confidence=decision.confidence if decision else 0.0,
            approval_required=verdict.approval_required, latency_ms=round(done.latency_ms, 1),
            prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens, worker_id=self.worker_id,
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
            agent = {metric_names.AGENT: stored.agent}
            self.metrics.count(metric_names.DECISIONS, **{metric_names.OUTCOME: stored.outcome})
            self.metrics.count(metric_names.AGENT_PROMPT_TOKENS, float(done.prompt_tokens), **agent)
            self.metrics.count(metric_names.AGENT_COMPLETION_TOKENS, float(done.completion_tokens), **agent)
        log.info("decision", extra={"decision_id": stored.decision_id, "agent": stored.agent,
                                    "subject": stored.subject, "event_id": item.event.id, "outcome": stored.outcome,
                                    "action": stored.action, "reason": stored.reason, "replay": not fresh})


def _first(values: list[int]) -> int:
    return int(values[0]) if values else 0
