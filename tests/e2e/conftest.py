"""One `koppel run` shared by the end-to-end modules that need a whole running system (the console
onboarding, the ERP's API and quickstart, the flows): starting one costs about 40 s of the suite.

Each module works with tenants, invoices and mandates of its own (the demo tenant's story makes new
numbers every time), so they do not see each other's records. test_flows' restart test stops this
system and starts it again; it is the last user (modules run in name order)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from koppel_testkit.launch import System, running_system


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # ERP endpoints of these tests (the quickstart's receiver, the onboarding's) listen on this
    # machine, which notify-svc refuses unless told otherwise, as the quickstart says.
    env = {"KOPPEL_NOTIFY_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    with running_system(tmp_path_factory.mktemp("koppel-run"), env=env) as running:
        yield running
