"""The infrastructure probe does real work against the local services and names what is wrong."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from koppel_cli import infra


def test_probe_passes_on_the_running_services() -> None:
    assert infra.probe("postgresql") is None
    assert infra.probe("rabbitmq") is None


def test_probe_names_a_broker_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:1/")
    why = infra.probe("rabbitmq", timeout=5)
    assert why is not None and "Connect" in why


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to stop the local broker")
def test_a_stopped_broker_application_is_started_again() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        assert infra.probe("rabbitmq", timeout=5) is not None
        infra.ensure_infrastructure(say=lambda _: None)
        assert infra.probe("rabbitmq") is None
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=False, capture_output=True, timeout=120)
