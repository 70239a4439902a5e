"""Staff commands: one module per command (base.py says what each declares), registry.py
lists them, parser.py reads them from the top of a staff reply. Pure."""
