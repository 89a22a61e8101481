"""CloudWatch metric namespace, names and dimensions: one module for the dashboard and the runtime.

Every metric carries the `Fleet` dimension; breakdowns add one more dimension
(`Outcome`, `Reason`, `Phase`, `Market`). The dashboard reads exactly these names.
"""

NAMESPACE = "AgentFleet"

# Dimensions
FLEET = "Fleet"
OUTCOME = "Outcome"  # decisions: acted, ignored, invalid_output, disallowed, rate_limited, approval_pending, dry_run
REASON = "Reason"  # quarantine reasons: invalid_json, missing_field, oversize, unknown_version, no_subscriber
PHASE = "Phase"  # boot phases: resolve, cache_lookup, download, compile, upload, load, warmup
MARKET = "Market"  # spot | on-demand (IMDS instance-life-cycle)
ADAPTER = "Adapter"  # wire formats: logs, cloudevents, kit, eventbridge, unknown (agentfleet.ingest.adapters)
AGENT = "Agent"  # per-agent showback: tokens and estimated dollars per agent
REPLICA = "Replica"  # a model replica on an instance: "0", "1", ... (its index, not its port)
TARGET = "Target"  # an action target: notify or a configured HTTP target name

# Agents
EVENTS_PROCESSED = "EventsProcessed"
EVENTS_QUARANTINED = "EventsQuarantined"
RECORDS_DROPPED = "RecordsDropped"  # with Reason: records deliberately not events (CloudWatch Logs control messages)
RECORDS_BY_ADAPTER = "RecordsByAdapter"  # with Adapter: which wire format each record came in
WEBHOOK_REJECTED = "WebhookRejected"  # GitHub webhook deliveries refused (bad or missing signature)
DECISIONS = "Decisions"
ACTIONS_DISPATCHED = "ActionsDispatched"
INFERENCE_LATENCY_MS = "InferenceLatency"
TOKENS_PER_SECOND = "TokensPerSecond"
GENERATED_TOKENS = "GeneratedTokens"
BATCH_FILL_PERCENT = "BatchFill"
BACKLOG_RECORDS = "BacklogRecords"  # the scaling policy tracks this one
MILLIS_BEHIND_LATEST = "MillisBehindLatest"
LEASED_SHARDS = "LeasedShards"  # gauge per worker each minute (Sum over workers = shards being read)
LEASE_BALANCING_FAILURES = "LeaseBalancingFailures"  # a lease tick (ListShards/Scan/take/renew) failed

# Continuous scheduling and replicas (issue 11)
IN_FLIGHT_REQUESTS = "InFlightRequests"  # gauge per worker: model requests sent and not yet answered
MODEL_SLOTS = "ModelSlots"  # gauge per worker: replicas x max_num_seqs it may keep in flight
QUEUE_TIME_MS = "QueueTime"  # per item: read -> sent to the model (waiting for a slot or its predecessor)
MODEL_TIME_MS = "ModelTime"  # per item: sent -> completion returned
REPLICA_UTILIZATION = "ReplicaUtilization"  # with Replica: busy slots / slots, percent
PREFIX_CACHE_HIT_RATE = "PrefixCacheHitRate"  # with Replica: percent, from the vLLM server's /metrics
AGENT_PROMPT_TOKENS = "AgentPromptTokens"  # with Agent: prompt tokens per decision (showback)
AGENT_COMPLETION_TOKENS = "AgentCompletionTokens"  # with Agent: completion tokens per decision (showback)
ITEMS_SHED = "ItemsShed"  # with Agent: items older than the agent's shed_after_seconds, recorded as `shed`
TARGET_DELIVERIES = "TargetDeliveries"  # with Target and Outcome (from the audit outcome items)

# Boot and compile cache
BOOT_TO_READY_SECONDS = "BootToReady"
BOOT_PHASE_SECONDS = "BootPhaseDuration"
COMPILE_CACHE_HITS = "CompileCacheHit"
COMPILE_CACHE_MISSES = "CompileCacheMiss"
COMPILE_SECONDS = "CompileSeconds"
BOOT_FAILURES = "BootFailure"  # with Phase: where a boot failed (the instance is abandoned)

# Neuron (from neuron-monitor)
NEURON_CORE_UTILIZATION = "NeuronCoreUtilization"
NEURON_DEVICE_MEMORY_USED = "NeuronDeviceMemoryUsed"

# Fleet lifecycle. CloudWatch has no per-market split of an Auto Scaling group, so each
# healthy worker emits WorkersInService=1 per minute with the Market dimension (Sum = count).
WORKERS_IN_SERVICE = "WorkersInService"
SPOT_INTERRUPTIONS = "SpotInterruptionNotices"

DECISION_OUTCOMES = (
    "acted", "ignored", "invalid_output", "disallowed", "rate_limited",
    "approval_pending", "dry_run", "failed", "shed",
)
QUARANTINE_REASONS = ("invalid_json", "missing_field", "oversize", "unknown_version", "no_subscriber", "unknown_shape")
