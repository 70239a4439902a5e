"""The business calendar, durations, month view and .ics export (pure)."""
