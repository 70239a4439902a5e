"""The mailintake command line, one module per command group."""
