"""Outbound delivery: the RQ job that forwards a spooled message to its destinations."""
