"""Loaded by every Python process with bench/probe_site on PYTHONPATH (bench.local puts it there for
the local fleet's processes); only the worker named by BENCH_SAMPLE_WORKER starts sampling."""

try:
    from bench.worker_probe import install
except ImportError:  # bench not importable in this process: nothing to sample
    pass
else:
    install()
