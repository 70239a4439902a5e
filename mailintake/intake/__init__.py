"""The front door: SMTP/LMTP listener and the durable store behind its 250."""
