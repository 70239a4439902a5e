"""Raw bytes to a parsed message, bounded, in a process pool."""
