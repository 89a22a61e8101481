"""Instance throughput for the cost model: replicas x per-replica tokens/s, or a measured instance figure.

Every chip an instance pays for serves: replicas = logical NeuronCores (compat.json `logical_cores`)
/ the family's tensor-parallel degree (`config.tp_for`). Tokens/s per instance, in order of trust:

1. a measured instance row (`--throughput FILE`, written by the fleet check; status `measured`);
2. replicas x a per-replica row `throughput/replica/<type>` (one model server on TP cores);
3. the instance row `throughput/<type>` as it stands. The shipped rows are a third-party *projection
   for a whole instance* (one Llama 4 Scout server across all of it), not a per-replica figure, so
   they are never multiplied by replicas.

A per-agent cost splits the fleet's cost by each agent's expected share of tokens. No config key says
how many events an agent expects, so the share is its `rate_limit_per_minute` over the sum of them: an
estimate that assumes every agent uses its limit in the same proportion and spends as many tokens per
decision as the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentfleet.spec import compat
from agentfleet.spec.fleet import FleetConfig
from stacks.pricing import CostInputError, PriceRow, PriceTable, throughput_id

MEASURED = "measured"


def replica_id(itype: str) -> str:
    return f"throughput/replica/{itype}"


def replicas_for(config: FleetConfig, itype: str) -> int | None:
    """Model replicas one instance of `itype` runs; None when the matrix does not know its cores
    (a type outside compat.json, e.g. a GPU baseline, runs one server: its row is per instance)."""
    try:
        row = compat.instance(itype)
    except compat.UnknownInstance:
        return None
    cores = row.get("logical_cores")
    if not cores:
        return None
    return max(1, int(cores) // config.tp_for(row["family"]))


def instance_throughput(config: FleetConfig, table: PriceTable, itype: str) -> tuple[float | None, str]:
    """(tokens/s per instance or None, how it was obtained) following the order in the module docstring."""
    row = table.rows.get(throughput_id(itype))
    if row is not None and row.value is not None and row.status == MEASURED:
        return row.value, f"measured ({row.source})"
    replicas, per_replica = replicas_for(config, itype), table.rows.get(replica_id(itype))
    if replicas is not None and per_replica is not None and per_replica.value is not None:
        return replicas * per_replica.value, f"{replicas} replicas x {per_replica.value:g} tokens/s ({per_replica.status})"
    if row is None or row.value is None:
        return None, "missing"
    return row.value, f"instance row ({row.status}; replicas not applied)"


def read_measured(path: str | Path) -> list[PriceRow]:
    """The fleet check's throughput file, {"<instance type>": {"tokens_per_second": x, "source": "..."}}
    (other keys, e.g. decisions_per_second, are kept out), as measured instance rows."""
    try:
        doc: Any = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CostInputError(f"throughput file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise CostInputError(f"throughput file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not doc:
        raise CostInputError(f"throughput file {str(path)!r}: expected {{\"<instance type>\": "
                             f"{{\"tokens_per_second\": <number>, \"source\": \"...\"}}}}")
    rows = []
    for itype, entry in doc.items():
        value = entry.get("tokens_per_second") if isinstance(entry, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise CostInputError(f"throughput file {str(path)!r}: {itype!r} needs \"tokens_per_second\" "
                                 f"as a positive number, got {entry!r}")
        source = entry.get("source") or str(path)
        rows.append(PriceRow(throughput_id(itype), float(value), "tokens/s per instance (all replicas)", "",
                             str(source), str(entry.get("date", "")), MEASURED))
    return rows


def agent_shares(config: FleetConfig) -> dict[str, float]:
    """Each agent's estimated share of the fleet's tokens: its rate limit over the sum of rate limits."""
    total = sum(a.rate_limit_per_minute for a in config.agents)
    return {a.name: a.rate_limit_per_minute / total for a in config.agents} if total else {}
