"""Decide: batch events across agents, load memory, build the prompt, run the model, parse and check the
decision (guardrails), write memory. pipeline.py is the stage's entry."""
