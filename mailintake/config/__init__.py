"""The configuration schema, its defaults, loading and validation."""
