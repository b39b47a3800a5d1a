"""HTTP routes and event consumers."""
