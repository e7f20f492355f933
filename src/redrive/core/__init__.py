"""The write path: run a handler, record its failure durably, retry it under a lease."""
