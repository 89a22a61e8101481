"""Agent Fleet Kit runtime: the code that runs inside agent_image on every instance.

A record flows ingest -> decide -> act; serve keeps the model answering; ops and spec are
shared by all. Packages, lowest layer first (a package imports only packages above it here):

    spec/         what the CDK app and the runtime agree on: agents, fleet config, runtime
                  settings, table keys, metric names, the decision schema (no AWS, no I/O)
    ops/          logs, AWS clients, retries, DynamoDB items, metrics, /ping, signals, IMDS
    serve/        the model: backends (model/) and the Neuron boot with its compile cache (boot/)
    act/          Step Functions dispatch and the write-ahead audit
    decide/       batching, prompt, memory, decision pipeline, guardrails
    ingest/       Kinesis records -> events: leases, coordinator, shard readers
    entrypoints/  `python -m agentfleet.entrypoints.boot|worker|prewarm|requeue`: wiring and lifecycle
    local/        local mode: the embedded emulator and the local fleet

tests/test_layers.py keeps this order and forbids import circles.
"""
