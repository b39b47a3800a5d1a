"""A service's own gauges: set from its database before each ``/metrics`` answer, and a failure
to read them never costs the other metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from koppel_shared.metrics import PARKED_MESSAGES
from koppel_shared.service import Runtime, ServiceDefinition
from koppel_shared.settings import KoppelSettings
from koppel_shared.testing.fixtures import settings_for_test
from koppel_shared.testing.service_checks import api_client

pytestmark = pytest.mark.integration


async def test_the_metrics_hook_reads_the_database_and_a_failing_one_leaves_metrics_answered(
    database_url: str, broker_prefix: str, cleanup_exchange: None
) -> None:
    calls: list[int] = []

    async def parked_from_database(runtime: Runtime) -> None:
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("database away")
        async with runtime.session_factory() as session:
            PARKED_MESSAGES.labels(service="metrics-test").set(
                (await session.execute(sa.text("SELECT 3"))).scalar_one()
            )

    definition = ServiceDefinition(
        name="metrics-test",
        title="metrics test",
        settings_cls=KoppelSettings,
        migrations_dir=Path("."),
        metrics=parked_from_database,
    )
    settings = settings_for_test(KoppelSettings, database_url, broker_prefix)
    gauge = 'koppel_parked_messages{service="metrics-test"} 3.0'
    async with api_client(definition, settings) as client:
        first = await client.get("/metrics")
        assert first.status_code == 200 and gauge in first.text
        second = await client.get("/metrics")
        assert second.status_code == 200 and len(calls) == 2
        assert "koppel_http_requests_total" in second.text and gauge in second.text  # the last value read
