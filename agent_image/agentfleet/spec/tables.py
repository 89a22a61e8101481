"""DynamoDB table keys, shared by the AgentState construct and the runtime.

memory  pk = "<agent>#<subject>"        one item per agent and subject, bounded lists, TTL
leases  pk = "<shard id>"               owner, expiry, checkpoint, parents, finished flag
audit   pk = "<kind>#<id>"              decisions, quarantined records, action outcomes;
        GSI by_kind (kind, at) lists one kind in time order
locks   share the leases table with pk = "lock#<name>" (compile lock, see boot)
"""

MEMORY_PK = "pk"
LEASES_PK = "shard_id"
AUDIT_PK = "pk"
AUDIT_INDEX = "by_kind"
AUDIT_INDEX_PK = "kind"
AUDIT_INDEX_SK = "at"
TTL_ATTRIBUTE = "expires_at"

KIND_DECISION = "decision"
KIND_QUARANTINE = "quarantine"
KIND_OUTCOME = "outcome"


def audit_key(kind: str, item_id: str) -> str:
    return f"{kind}#{item_id}"


def memory_key(agent: str, subject: str) -> str:
    return f"{agent}#{subject}"
