"""The mailintake command line, one module per command group; `main` is the console entry point."""

from mailintake.cli.main import main

__all__ = ["main"]
