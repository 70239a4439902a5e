"""Database models, engine, sessions and migrations."""
