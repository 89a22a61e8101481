"""DynamoDB table keys, shared by the AgentState construct and the runtime.

memory  pk = "<agent>#<subject>"        one item per agent and subject, bounded lists, TTL
leases  pk = "<shard id>"               owner, expiry, checkpoint, parents, finished flag
audit   pk = "<kind>#<id>"              decisions, quarantined records, action outcomes;
        GSI by_kind_bucket (kind_bucket, at): kind_bucket = "<kind>#<n>", n in 0..AUDIT_INDEX_BUCKETS-1
        from a hash of pk, so a burst of one kind (three kinds, rising `at`) spreads over that many
        index partitions instead of one; a reader of one kind queries every bucket and merges by `at`
locks   share the leases table with pk = "lock#<name>" (compile lock, see boot)
"""

import zlib

MEMORY_PK = "pk"
LEASES_PK = "shard_id"
AUDIT_PK = "pk"
AUDIT_INDEX = "by_kind_bucket"
AUDIT_INDEX_PK = "kind_bucket"
AUDIT_INDEX_SK = "at"
AUDIT_INDEX_BUCKETS = 16
TTL_ATTRIBUTE = "expires_at"

KIND_DECISION = "decision"
KIND_QUARANTINE = "quarantine"
KIND_OUTCOME = "outcome"


def audit_key(kind: str, item_id: str) -> str:
    return f"{kind}#{item_id}"


def index_key(kind: str, pk: str) -> dict[str, str]:
    """The index partition attribute of an audit item (stable for a pk, so a rewrite stays put)."""
    return {AUDIT_INDEX_PK: f"{kind}#{zlib.crc32(pk.encode()) % AUDIT_INDEX_BUCKETS}"}


def kind_buckets(kind: str) -> list[str]:
    """Every index partition value of one kind: query each to list the kind."""
    return [f"{kind}#{n}" for n in range(AUDIT_INDEX_BUCKETS)]


def memory_key(agent: str, subject: str) -> str:
    return f"{agent}#{subject}"
