"""Fixtures every test suite of the repository can use (real PostgreSQL and RabbitMQ), and guards
that make a broken machine fail the suite quickly with a reason instead of timing out test by test."""

from __future__ import annotations

import os
import time

import pytest

from koppel_cli import infra

pytest_plugins = ["koppel_shared.testing.fixtures"]

# The whole suite takes about 15 minutes on two cores; far beyond that something is wrong, and a
# clear stop beats every remaining test waiting out its own timeout.
BUDGET_SECONDS = float(os.environ.get("KOPPEL_TEST_BUDGET_SECONDS", "2700"))
_started = time.monotonic()
_stop_reason: list[str] = []


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """The chaos drill restarts PostgreSQL and RabbitMQ: it runs after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)


def _broken_infrastructure() -> str | None:
    for name in ("postgresql", "rabbitmq"):
        why = infra.probe(name)
        if why is not None and name == "rabbitmq":
            infra.repair_rabbitmq(say=lambda _: None)
            why = infra.probe(name)
        if why is not None:
            return f"{name} does not work: {why}"
    return None


def pytest_sessionstart(session):  # type: ignore[no-untyped-def]
    if os.environ.get("KOPPEL_TEST_SKIP_PROBE"):
        return
    why = _broken_infrastructure()
    if why:
        pytest.exit(f"the suite needs working PostgreSQL and RabbitMQ on 127.0.0.1: {why}", returncode=3)
    if os.environ.get("CI"):  # one session per machine there; a developer may run two at once
        infra.sweep_queues()  # what earlier runs left behind


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    # A fixture that cannot be set up is the first sign of a broker or database gone bad (for
    # instance a drill interrupted between stopping and starting RabbitMQ): check them for real.
    if report.when == "setup" and report.failed and not _stop_reason:
        why = _broken_infrastructure()
        if why:
            _stop_reason.append(f"stopped after {item.nodeid}: {why}")


def pytest_runtest_setup(item):  # type: ignore[no-untyped-def]
    if _stop_reason:
        pytest.exit(_stop_reason[0], returncode=3)
    spent = time.monotonic() - _started
    if spent > BUDGET_SECONDS:
        pytest.exit(f"the suite ran {spent:.0f} s, over its budget of {BUDGET_SECONDS:.0f} s "
                    "(KOPPEL_TEST_BUDGET_SECONDS); see the slowest tests above", returncode=3)  # fmt: skip


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    # Leave the machine as it was found: a broker application stopped by a test starts again.
    if not infra.port_open(*infra.RABBITMQ):
        infra.repair_rabbitmq(say=lambda _: None)
    elif os.environ.get("CI"):
        infra.sweep_queues()
