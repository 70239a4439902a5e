"""Staff commands and replies, reporter replies."""
