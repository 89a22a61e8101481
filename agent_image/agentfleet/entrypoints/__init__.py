"""Entry points: the container (boot.py: boot, then the worker), the worker alone (worker.py), the
cache pre-warm (prewarm.py), putting quarantined records back (requeue.py) and measuring a deployed fleet
(fleetcheck.py, with fleetcheck_events/_aws/_figures); drain.py stops a worker within its deadline."""
