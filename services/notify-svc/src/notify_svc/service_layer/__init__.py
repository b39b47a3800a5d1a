"""Use cases, run inside a unit of work."""
