"""Disclosure policies and the deadlines they set (pure)."""
