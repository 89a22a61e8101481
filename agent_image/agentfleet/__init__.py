"""Agent Fleet Kit runtime: the code that runs inside agent_image on every instance.

The modules `catalog`, `metric_names` and `tables` are also imported by the CDK app, so
the stack and the runtime share one definition of agents, metrics and table keys.
"""
