"""Reports: creation and the read model the CLI, templates and export use."""
