"""The daemon: listener, workers and scheduler in one process."""
