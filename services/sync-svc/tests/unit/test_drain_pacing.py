"""Which tenants the drain loop drains now, and when it looks again."""

from __future__ import annotations

import uuid

from sync_svc.entrypoints.loops import due_now
from sync_svc.service_layer.drain_requests import Pending


def test_a_tenant_drained_a_moment_ago_waits_and_the_loop_knows_until_when() -> None:
    fresh, recent, failing = (Pending(uuid.uuid4(), 1, None) for _ in range(3))
    not_before = {fresh.tenant_id: 0.0, recent.tenant_id: 100.15, failing.tenant_id: 101.0}
    due, look_again = due_now([fresh, recent, failing], 100.0, not_before.__getitem__)
    assert due == [fresh]
    assert look_again == 100.15


def test_nothing_waiting_means_no_early_look() -> None:
    a = Pending(uuid.uuid4(), None, None)
    assert due_now([a], 5.0, lambda _: 4.0) == ([a], None)
    assert due_now([], 5.0, lambda _: 0.0) == ([], None)
