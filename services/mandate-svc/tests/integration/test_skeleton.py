import pytest

from koppel_shared.testing.fixtures import settings_for_test
from koppel_shared.testing.service_checks import check_service_round_trip
from mandate_svc.bootstrap import definition
from mandate_svc.settings import Settings

pytestmark = pytest.mark.integration


async def test_mandate_svc_migrates_answers_health_and_consumes_through_outbox_and_inbox(
    database_url: str, broker_prefix: str, cleanup_exchange: None
) -> None:
    await check_service_round_trip(definition, settings_for_test(Settings, database_url, broker_prefix))
