"""Neuron boot: compile once per model/shape/compiler with a shared S3 cache, serve, gate readiness.

Entry points: `python -m agentfleet.entrypoints.boot` (the container: boot, then the agent loop) and
`python -m agentfleet.entrypoints.prewarm` (a one-off compile into the cache, no serving).
"""
