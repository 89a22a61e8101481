"""The container entry point: boot the model, prove it answers, tell Auto Scaling, then run the agents.

    /ping "starting" -> boot (cache or compile) -> load -> warm-up request -> /ping "healthy"
      -> CompleteLifecycleAction CONTINUE (launch hook) -> worker loop
A failed boot logs why, emits BootFailure{Phase}, completes the launch action with ABANDON
(the group replaces the instance rather than count a broken one in service) and exits 1.

`engine` and `instance_family` may be "auto": the family then comes from IMDS (a mixed
Trn3/Trn2/Inf2 group boots whichever it got) and the engine from the family.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from agentfleet import instance, logs, metric_names
from agentfleet.boot.cache_key import instance_family
from agentfleet.boot.engines import Engine, create_engine
from agentfleet.boot.sequence import Boot, BootDeps, BootError, BootResult
from agentfleet.health import HealthServer
from agentfleet.metrics import Metrics
from agentfleet.model.base import ModelBackend
from agentfleet.settings import Settings

log = logs.get(__name__)

# vLLM Neuron is the engine of the pinned Trn2/Trn3 container; optimum-neuron serves Inf2/Trn1.
DEFAULT_ENGINE = {"trn3": "vllm-neuron", "trn2": "vllm-neuron", "trn1": "optimum-neuron",
                  "trn1n": "optimum-neuron", "inf2": "optimum-neuron", "cpu": "transformers-cpu"}
WorkerRunner = Callable[[Settings, ModelBackend, HealthServer, Metrics, instance.InstanceMetadata], int]
EngineFactory = Callable[[Settings, str], Engine]


def resolve_target(settings: Settings, imds: instance.InstanceMetadata) -> Settings:
    """Settings with a concrete instance_family and engine."""
    family = settings.instance_family
    if family in ("", "auto"):
        instance_type = imds.instance_type()
        if instance_type is None:
            raise BootError("resolve", "instance_family is 'auto' but instance metadata is unreachable")
        family = instance_family(instance_type)
    engine = settings.engine
    if engine in ("", "auto"):
        if family not in DEFAULT_ENGINE:
            raise BootError("resolve", f"no default engine for instance family {family!r}")
        engine = DEFAULT_ENGINE[family]
    return dataclasses.replace(settings, instance_family=family, engine=engine)


def signal_launch(settings: Settings, imds: instance.InstanceMetadata, asg_client: Any, result: str) -> None:
    """Complete the launch lifecycle action; outside an Auto Scaling group there is none."""
    if not (settings.asg_name and settings.launch_hook_name):
        log.info("no Auto Scaling group configured; no lifecycle action to complete", extra={"result": result})
        return
    instance_id = imds.instance_id()
    if instance_id is None:
        log.warning("instance id unknown (IMDS unreachable); cannot complete the launch action",
                    extra={"result": result})
        return
    instance.complete_lifecycle_action(asg_client, asg_name=settings.asg_name, hook_name=settings.launch_hook_name,
                                       instance_id=instance_id, result=result)


def boot_and_signal(
    settings: Settings,
    *,
    deps: BootDeps,
    health: HealthServer,
    imds: instance.InstanceMetadata,
    asg_client: Any,
    engine_factory: EngineFactory = create_engine,
) -> tuple[Settings, BootResult] | None:
    """Boot, warm up, go healthy, CONTINUE. On failure: log, metric, ABANDON, return None."""
    started = time.monotonic()
    try:
        target = resolve_target(settings, imds)
        engine = engine_factory(target, target.instance_family)
        owner = imds.instance_id() or settings.worker_id
        result = Boot(target, engine, target.instance_family, deps, owner=owner).run()
    except Exception as exc:
        phase = exc.phase if isinstance(exc, BootError) else "resolve"
        log.error("boot failed; abandoning this instance", extra={"phase": phase, "reason": str(exc)}, exc_info=True)
        deps.metrics.count(metric_names.BOOT_FAILURES, Phase=phase)
        deps.metrics.flush()
        try:
            signal_launch(settings, imds, asg_client, "ABANDON")
        except Exception:
            log.exception("could not complete the launch action with ABANDON; the hook timeout will decide")
        return None
    health.set_state("healthy")
    ready_s = time.monotonic() - started
    deps.metrics.observe(metric_names.BOOT_TO_READY_SECONDS, ready_s, "Seconds")
    deps.metrics.flush()
    log.info("boot complete", extra={"cache_key": result.key, "cache_hit": result.cache_hit,
                                     "compiled": result.compiled, "boot_to_ready_s": round(ready_s, 1),
                                     "phases_s": {k: round(v, 2) for k, v in result.phases.items()}})
    try:
        signal_launch(target, imds, asg_client, "CONTINUE")
    except Exception:
        # Serving is fine; if the hook times out its default result decides. Make it visible.
        log.exception("could not complete the launch action with CONTINUE")
    return target, result


def make_deps(settings: Settings, metrics: Metrics) -> BootDeps:
    from agentfleet.aws import client

    return BootDeps(s3=client("s3"), dynamodb=client("dynamodb"), metrics=metrics,
                    secrets=client("secretsmanager") if settings.hf_token_secret_id else None)


def make_metrics(settings: Settings) -> Metrics:
    from agentfleet.aws import client

    return Metrics(settings.fleet_name, settings.metrics_mode,
                   cloudwatch=client("cloudwatch") if settings.metrics_mode == "put" else None)


def load_backend(settings: Settings) -> ModelBackend:
    """Cache-or-compile, then load; for callers that manage readiness themselves."""
    imds = instance.InstanceMetadata()
    metrics = make_metrics(settings)
    target = resolve_target(settings, imds)
    boot = Boot(target, create_engine(target, target.instance_family), target.instance_family,
                make_deps(target, metrics), owner=imds.instance_id() or settings.worker_id)
    try:
        return boot.load(boot.prepare())
    finally:
        metrics.flush()


def _run_worker(settings: Settings, backend: ModelBackend, health: HealthServer, metrics: Metrics,
                imds: instance.InstanceMetadata) -> int:

    from agentfleet.shutdown import StopSignal
    from agentfleet.worker import Worker, exit_code

    stop = StopSignal()
    stop.install_signal_handlers()
    on_ec2 = imds.instance_id() is not None
    market = (imds.get("meta-data/instance-life-cycle") or "") if on_ec2 else ""
    worker = Worker(settings, backend, health=health, metrics=metrics, stop=stop, market=market,
                    metadata=imds if (on_ec2 and settings.asg_name) else None)
    return exit_code(worker, worker.run())


def _preflight(settings: Settings) -> None:
    """Fail before an hour of compiling if the worker could never start anyway."""
    from agentfleet.worker import check_settings

    check_settings(settings)


def main(argv: list[str] | None = None, *, run_worker: WorkerRunner = _run_worker,
         preflight: Callable[[Settings], None] = _preflight) -> int:
    from agentfleet import settings as settings_mod
    from agentfleet.aws import client
    from agentfleet.boot.neuron_monitor import NeuronMonitor

    logs.configure()
    settings = settings_mod.resolve()
    metrics = make_metrics(settings)
    health = HealthServer(port=settings.http_port).start()
    imds = instance.InstanceMetadata()
    asg = client("autoscaling") if settings.asg_name else None
    try:
        preflight(settings)
        deps = make_deps(settings, metrics)
    except Exception as exc:
        log.error("configuration cannot boot; abandoning this instance", extra={"reason": str(exc)})
        metrics.count(metric_names.BOOT_FAILURES, Phase="resolve")
        metrics.flush()
        try:
            signal_launch(settings, imds, asg, "ABANDON")
        except Exception:
            log.exception("could not complete the launch action with ABANDON; the hook timeout will decide")
        health.stop()
        return 1
    booted = boot_and_signal(settings, deps=deps, health=health, imds=imds, asg_client=asg)
    if booted is None:
        health.stop()
        return 1
    target, result = booted
    assert result.backend is not None
    monitor = NeuronMonitor(metrics)
    if target.engine != "transformers-cpu":
        monitor.start()
    try:
        return run_worker(target, result.backend, health, metrics, imds)
    finally:
        monitor.stop()
        result.backend.close()
        metrics.flush()
        health.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
