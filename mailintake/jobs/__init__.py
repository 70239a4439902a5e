"""Periodic work: held acknowledgements, the SLA pass and the daily digest."""
