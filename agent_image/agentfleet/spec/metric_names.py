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
    "approval_pending", "dry_run", "failed",
)
QUARANTINE_REASONS = ("invalid_json", "missing_field", "oversize", "unknown_version", "no_subscriber", "unknown_shape")
