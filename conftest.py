"""Fixtures every test suite of the repository can use (real PostgreSQL and RabbitMQ)."""

pytest_plugins = ["koppel_shared.testing.fixtures"]
