"""What the CDK app and the runtime agree on: agents, fleet config, settings, table keys, metric names,
the decision schema. Pure data and validation: nothing here does I/O or imports another layer."""
