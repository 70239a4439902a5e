"""Milestones in storage, admin closures and the effective calendar."""
