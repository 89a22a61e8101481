"""Ingest: Kinesis records in, validated events out. Leases (DynamoDB, KCL-style), the coordinator that
balances them, shard readers, and the event decoder that quarantines what it cannot read."""
