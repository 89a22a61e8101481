"""Operational plumbing shared by every stage: structured logs, AWS clients, retries, DynamoDB items,
metrics (EMF), the /ping server, stop signals and drain triggers, instance metadata (IMDSv2)."""
