"""mailintake: runs a company's security@ mailbox."""

__version__ = "0.1.0"
