"""Routing policy shared by every worker: relay circuit breakers, per-destination limits, smart route choice."""
