"""Benchmarks for issue #6: runtime overhead, batching, synth time, local throughput (`make bench`)."""
