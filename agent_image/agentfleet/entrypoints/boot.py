"""The container entry point: boot the model, prove it answers, tell Auto Scaling, then run the agents.

    /ping "starting" -> boot (cache or compile) -> load -> warm-up request -> /ping "healthy"
      -> CompleteLifecycleAction CONTINUE (launch hook) -> worker loop
A failed boot logs why, emits BootFailure{Phase}, completes the launch action with ABANDON
(the group replaces the instance rather than count a broken one in service) and exits 1.

`engine` and `instance_family` may be "auto": the family then comes from IMDS (a mixed
Trn3/Trn2/Inf2 group boots whichever it got) and the engine from the family.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from agentfleet.ops import instance, logs
from agentfleet.ops.health import HealthServer
from agentfleet.ops.metrics import Metrics
from agentfleet.serve.boot.engines import Engine, create_engine
from agentfleet.serve.boot.load import make_deps, make_metrics, resolve_target
from agentfleet.serve.boot.sequence import Boot, BootDeps, BootError, BootResult
from agentfleet.serve.model.base import ModelBackend
from agentfleet.spec import metric_names
from agentfleet.spec.settings import Settings

log = logs.get(__name__)

WorkerRunner = Callable[[Settings, ModelBackend, HealthServer, Metrics, instance.InstanceMetadata], int]
EngineFactory = Callable[[Settings, str], Engine]


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


def _run_worker(settings: Settings, backend: ModelBackend, health: HealthServer, metrics: Metrics,
                imds: instance.InstanceMetadata) -> int:

    from agentfleet.entrypoints.worker import Worker, exit_code
    from agentfleet.ops.shutdown import StopSignal

    stop = StopSignal()
    stop.install_signal_handlers()
    on_ec2 = imds.instance_id() is not None
    market = (imds.get("meta-data/instance-life-cycle") or "") if on_ec2 else ""
    worker = Worker(settings, backend, health=health, metrics=metrics, stop=stop, market=market,
                    metadata=imds if (on_ec2 and settings.asg_name) else None)
    return exit_code(worker, worker.run())


def _preflight(settings: Settings) -> None:
    """Fail before an hour of compiling if the worker could never start anyway."""
    from agentfleet.entrypoints.worker import check_settings

    check_settings(settings)


def main(argv: list[str] | None = None, *, run_worker: WorkerRunner = _run_worker,
         preflight: Callable[[Settings], None] = _preflight) -> int:
    from agentfleet.ops.aws import client, read_ssm_parameter
    from agentfleet.serve.boot.neuron_monitor import NeuronMonitor
    from agentfleet.spec import settings as settings_mod

    logs.configure()
    settings = settings_mod.resolve(ssm_get=read_ssm_parameter)
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
