"""Bulk seeding: N signed mandates and/or N open transactions in one call, directly in memory.

It builds objects and feed events without the HTTP layer and without webhooks, so 100,000
mandates take seconds. Seeded objects are indistinguishable from ones made through the API.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from .render import iso
from .state import (
    OPEN,
    PAID,
    SIGNED,
    Creditor,
    FeedEvent,
    Mandate,
    SandboxState,
    Transaction,
    snapshot_mandate,
    snapshot_transaction,
)


def belgian_iban(n: int) -> str:
    """A valid Belgian IBAN derived from n (bank code 645, national check digits mod 97)."""
    base = 6450000000 + n % 10_000_000
    national = base % 97 or 97
    bban = f"{base:010d}{national:02d}"
    check = 98 - int(bban + "111400") % 97  # "BE00" -> B=11, E=14, 00
    return f"BE{check:02d}{bban}"


def seed_mandates(state: SandboxState, creditor: Creditor, count: int, scheme: str = "CORE") -> list[str]:
    ct = creditor.template_id(scheme)
    now = state.clock.now()
    ids: list[str] = []
    feed = creditor.mandate_feed
    for _ in range(count):
        creditor.mandate_counter += 1
        mndt_id = f"{creditor.prefix}{creditor.mandate_counter:07d}"
        if mndt_id in creditor.mandates:
            continue
        cid = state.next_contract_id()
        m = Mandate(
            contract_id=cid,
            mndt_id=mndt_id,
            api_key=creditor.api_key,
            ct=ct,
            scheme=scheme,
            state=SIGNED,
            key=secrets.token_hex(4),
            created_at=now,
            first_name="Seed",
            last_name=f"Debtor {cid}",
            email=f"debtor{cid}@example.com",
            customer_number=f"CUST{cid}",
            country="BE",
            iban=belgian_iban(cid),
            bic="KREDBEBB",
            contract_number=f"C-{cid}",
            sign_method="import",
            sign_date=now,
        )
        creditor.mandates[mndt_id] = m
        feed.append(FeedEvent(seq=state.next_seq(), at=now, kind="new", obj=snapshot_mandate(m)))
        ids.append(mndt_id)
    return ids


def seed_transactions(
    state: SandboxState,
    creditor: Creditor,
    count: int,
    amount: Decimal,
    mandate_ids: list[str] | None = None,
    paid: bool = False,
) -> list[int]:
    """OPEN transactions; with ``paid`` the bank has paid each too (its PAID feed entry follows
    the creation entry, as after ``/transactions/{id}/paid``, but no webhook is sent)."""
    if mandate_ids is None:
        mandate_ids = [m.mndt_id for m in creditor.mandates.values() if m.state == SIGNED]
    if not mandate_ids:
        raise ValueError("no signed mandates to create transactions on")
    now = state.clock.now()
    ids: list[int] = []
    feed = creditor.transaction_feed
    for i in range(count):
        m = creditor.mandates[mandate_ids[i % len(mandate_ids)]]
        tid = state.next_tx_id()
        t = Transaction(
            id=tid,
            api_key=creditor.api_key,
            contract_id=m.contract_id,
            mndt_id=m.mndt_id,
            contract=m.contract_number,
            amount=amount,
            msg=f"Seeded invoice {tid}",
            place=None,
            ref=f"SEED-{tid}",
            date=now,
            reqcolldt=None,
            state=OPEN,
            lastupdate=now,
        )
        creditor.transactions[tid] = t
        feed.append(FeedEvent(seq=state.next_seq(), at=now, kind="state", obj=snapshot_transaction(t)))
        if paid:
            t.state, t.final, t.bkdate, t.bkamount = PAID, True, now, amount
            t.actions.append({"type": "paid", "reason": "bank", "action": "PAID", "at": iso(now)})
            feed.append(FeedEvent(seq=state.next_seq(), at=now, kind="state", obj=snapshot_transaction(t)))
        ids.append(tid)
    return ids
