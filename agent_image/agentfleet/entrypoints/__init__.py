"""Entry points: the container (boot.py: boot, then the worker), the worker alone (worker.py), the
cache pre-warm (prewarm.py) and putting quarantined records back (requeue.py); drain.py stops a
worker within its deadline."""
