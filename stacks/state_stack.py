"""StateStack: everything that must survive destroying and re-creating the compute."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct
from constructs.agent_state import AgentState
from constructs.compile_cache import CompileCache
from constructs.ingest import Ingest

from agentfleet.spec.fleet import FleetConfig


class StateStack(Stack):
    """The event stream, the agent state tables and the compile cache, with their keys (all RETAIN)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=f"Agent Fleet Kit {config.fleet_name}: stateful resources",
                         **kwargs)
        self.ingest = Ingest(self, "Ingest", mode=config.kinesis_mode, shard_count=config.kinesis_shard_count,
                             retention_hours=config.kinesis_retention_hours)
        self.cache = CompileCache(self, "CompileCache")
        self.state = AgentState(self, "AgentState", access_logs=self.cache.access_logs)
        # What a worker may do with the state, defined beside the state: the compute stack only
        # attaches it, so its wildcards never embed another stack's export names.
        self.worker_policy = iam.ManagedPolicy(
            self, "WorkerPolicy", description="Agent Fleet Kit workers: read the stream, use the tables and cache",
            statements=[*self.ingest.consumer_statements(), *self.state.runtime_statements(),
                        *self.cache.runtime_statements()])
        Validations.of(self.worker_policy).acknowledge(
            Acknowledgment(id=self.cache.objects_finding(),
                           reason="Compiled artifacts and weights are objects with content-addressed keys under this bucket."),
            Acknowledgment(id=self.state.quarantine_finding(),
                           reason="Each quarantined record is one object named by its shard and sequence number; "
                                  "PutObject only, under the quarantine/ prefix."))
        for name, value in (("StreamName", self.ingest.stream.stream_name),
                            ("MemoryTable", self.state.memory.table_name),
                            ("LeasesTable", self.state.leases.table_name),
                            ("AuditTable", self.state.audit.table_name),
                            ("CacheBucket", self.cache.bucket.bucket_name),
                            ("QuarantineBucket", self.state.quarantine.bucket_name)):
            CfnOutput(self, name, value=value)
