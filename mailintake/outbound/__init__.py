"""Mail we send: templates, composition, notices, outbox, relay."""
