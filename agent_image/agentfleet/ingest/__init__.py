"""Ingest: Kinesis records in, validated events out. Leases (DynamoDB, KCL-style counters judged on
this host's monotonic clock: leases, expiry), balancing (balance, coordinator), shard readers
(consumer, paced to the GetRecords limits), KPL de-aggregation (kpl), routing to agents (shards) and
quarantine writes on their own thread (quarantine)."""
