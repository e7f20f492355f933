"""Transports: sources that consume events from a broker and hand them to the core."""
