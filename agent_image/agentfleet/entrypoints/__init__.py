"""Entry points: the container (boot.py: boot, then the worker), the worker alone (worker.py) and
the cache pre-warm (prewarm.py); drain.py stops a worker within its deadline."""
