"""Periodic work: the SLA pass and the daily digest."""
