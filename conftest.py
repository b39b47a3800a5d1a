"""Fixtures every test suite of the repository can use (real PostgreSQL and RabbitMQ)."""

pytest_plugins = ["koppel_shared.testing.fixtures"]


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """The chaos drill restarts PostgreSQL and RabbitMQ: it runs after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)
