"""The app's stacks: one per deployable unit. Config lives in agentfleet.spec.fleet."""
