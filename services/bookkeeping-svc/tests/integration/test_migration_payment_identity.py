"""Migration 0004 on bookings made before payment kinds existed: kind and Twikey id backfilled,
the posted reference kept (Twinfield knows those MEMOs by it), and the same number then usable
once per kind."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bookkeeping_svc.bootstrap import definition
from koppel_shared.migrations import upgrade

pytestmark = pytest.mark.integration

INSERT = sa.text(
    "INSERT INTO bookings (id, tenant_id, collection_id, twikey_transaction_id, reference, invoice_number, "
    "customer_number, amount_cents, method, paid_on, status) VALUES "
    "(:id, :tenant, :collection, :tx, :tx, :invoice, '1001', 12100, :method, :paid_on, 'matched')"
)


async def test_old_bookings_get_their_kind_and_twikey_id_and_keep_their_reference(database_url: str) -> None:
    await asyncio.to_thread(upgrade, definition.migrations_dir, database_url, "0003")
    tenant = uuid.uuid4()
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for method, tx, invoice in (("direct_debit", "100", "F-1"), ("paylink", "200", "F-2")):
                await conn.execute(
                    INSERT,
                    {
                        "id": uuid.uuid4(),
                        "tenant": tenant,
                        "collection": str(uuid.uuid4()),
                        "tx": tx,
                        "invoice": invoice,
                        "method": method,
                        "paid_on": date(2026, 1, 5),
                    },
                )
        await asyncio.to_thread(upgrade, definition.migrations_dir, database_url, "0004")
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT method, payment_kind, twikey_id, twikey_transaction_id, reference FROM bookings "
                        "WHERE tenant_id = :t ORDER BY method"
                    ),
                    {"t": tenant},
                )
            ).all()
            assert [tuple(r) for r in rows] == [
                ("direct_debit", "transaction", "100", "100", "100"),
                ("paylink", "paylink", "200", None, "200"),
            ]
            # Transaction 200 is another payment than pay link 200: it may be booked too; a second
            # transaction 100 may not.
            await conn.execute(
                sa.text(
                    "INSERT INTO bookings (id, tenant_id, collection_id, payment_kind, twikey_id, reference, "
                    "invoice_number, customer_number, amount_cents, method, paid_on, status) "
                    "SELECT gen_random_uuid(), tenant_id, 'c-new', 'transaction', '200', 'TX200', 'F-3', "
                    "customer_number, amount_cents, 'direct_debit', paid_on, 'open' FROM bookings "
                    "WHERE tenant_id = :t AND method = 'paylink'"
                ),
                {"t": tenant},
            )
            with pytest.raises(sa.exc.IntegrityError):
                async with conn.begin_nested():
                    await conn.execute(
                        sa.text(
                            "UPDATE bookings SET payment_kind = 'transaction', twikey_id = '200' "
                            "WHERE invoice_number = 'F-1'"
                        )
                    )
    finally:
        await engine.dispose()
