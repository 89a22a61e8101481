"""From settings to a loaded model: the instance family and engine, the boot's clients, and
cache-or-compile then load (for callers that manage readiness themselves)."""

from __future__ import annotations

import dataclasses

from agentfleet.ops import instance
from agentfleet.ops.metrics import Metrics
from agentfleet.serve.boot.engines import create_engine
from agentfleet.serve.boot.sequence import Boot, BootDeps, BootError
from agentfleet.serve.model.base import ModelBackend
from agentfleet.spec import sizing
from agentfleet.spec.compat import UnknownInstance, engine_for, generation, instance_family
from agentfleet.spec.settings import Settings


def resolve_target(settings: Settings, imds: instance.InstanceMetadata) -> Settings:
    """Settings with a concrete instance_family (the accelerator generation: compiled artifacts are per
    generation) and engine, both from the compatibility matrix (agentfleet.spec.compat), and the replicas
    per instance where the matrix knows the instance type's cores (else 0: the engine counts with neuron-ls)."""
    family, instance_type = settings.instance_family, None
    if family in ("", "auto"):
        instance_type = imds.instance_type()
        if instance_type is None:
            raise BootError("resolve", "instance_family is 'auto' but instance metadata is unreachable")
        family = instance_family(instance_type)
    try:
        family = generation(family)
        engine = settings.engine if settings.engine not in ("", "auto") else engine_for(family)
    except UnknownInstance as exc:
        raise BootError("resolve", str(exc)) from None
    replicas = settings.replicas
    if not replicas and instance_type is not None:
        try:
            replicas = sizing.replicas(instance_type, settings.tensor_parallel_degree, engine) or 0
        except UnknownInstance:
            replicas = 0  # a type the matrix lacks: counted with neuron-ls at load
    return dataclasses.replace(settings, instance_family=family, engine=engine, replicas=replicas)


def make_deps(settings: Settings, metrics: Metrics) -> BootDeps:
    from agentfleet.ops.aws import client

    return BootDeps(s3=client("s3"), dynamodb=client("dynamodb"), metrics=metrics,
                    secrets=client("secretsmanager") if settings.hf_token_secret_id else None)


def make_metrics(settings: Settings) -> Metrics:
    from agentfleet.ops.aws import client

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
