"""Vocabulary every stage shares: addresses, reply tokens, the clock."""
