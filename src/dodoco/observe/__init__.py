"""Observation: capture hooks and the runner over conditions."""
