"""The chaos drill in its CI size: 1,000 payments (direct debits and pay links whose Twikey ids
collide) while service processes are killed and restarted, RabbitMQ and PostgreSQL restart, the
sandboxes and the ERP misbehave, mandate requests arrive three at a time with one key and
invites time out after Twikey created the mandate.
Nothing lost, nothing twice — checked against the sandboxes' own records (``make chaos`` runs
the full size, 10,000)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from koppel_testkit.chaos import run_drill

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        shutil.which("rabbitmqctl") is None or shutil.which("pg_ctlcluster") is None,
        reason="restarts the local RabbitMQ and PostgreSQL",
    ),
]

# 600 in CI: since the never-twice look-up reads Twinfield once per invoice number (no batch
# operator is confirmed), booking is bound by Twinfield's credits (about 366 a minute); 1,000 took
# 5.3 minutes of the suite. Every fault still lands while payments are in flight. `make chaos`
# runs the full 10,000.
PAYMENTS = int(os.environ.get("KOPPEL_CHAOS_PAYMENTS", "600"))


def test_paid_collections_survive_kills_and_restarts_with_nothing_lost_or_doubled(tmp_path: Path) -> None:
    report = run_drill(
        tmp_path, payments=PAYMENTS, kills=6, infrastructure=True, seed=20261122, say=print, pause=(1.0, 3.0)
    )
    figures = report.figures()
    print(figures)
    # The outside world's records: one MEMO and one match per payment, one collection per invoice.
    assert figures["memos_in_twinfield"] == PAYMENTS
    assert figures["invoices_booked_twice"] == 0 and figures["invoices_matched_twice"] == 0
    direct_debits = PAYMENTS - figures["paid_by_paylink"]
    assert figures["paid_by_paylink"] > 0  # their Twikey ids collide with the transactions' ones
    assert figures["collections_at_twikey"] == direct_debits and figures["invoices_collected_twice"] == 0
    # Each mandate request was sent three times at once, and invites timed out after the write.
    assert figures["customers_with_several_mandates_at_twikey"] == 0
    # And the check finance trusts: Twikey's record, Koppel's bookings and Twinfield's agree.
    assert figures["reconciliation_differences"] == 0
    assert len(report.matches) == PAYMENTS
    # The ERP heard everything; nothing is left for an operator to explain.
    assert figures["feed_events"] >= 3 * PAYMENTS  # submitted, paid, booked at least
    assert report.events_not_delivered == []
    assert report.dead_letters == {}
    assert report.booking_errors == []
    # Every fault was recovered from, by the system itself.
    assert len(report.faults) == 8
    assert all(f.back_after_s is not None and f.outbox_drained_after_s is not None for f in report.faults)
    assert report.problems == []
