"""A report's thread once it is open: staff replies and their commands (staff.py,
commands/), the reporter's replies (reporter.py) and what both share (thread.py)."""
