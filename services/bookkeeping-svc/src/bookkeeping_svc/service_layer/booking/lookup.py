"""The look-ups that decide "never twice": the customer lines of invoice numbers (browse 100),
the descriptions of candidate MEMO lines (a full read of their transaction), and customer e-mails
that decide between candidate invoices. A refused look-up is a ``Fault``, never "not there"."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from bookkeeping_svc.adapters.twinfield import documents
from bookkeeping_svc.adapters.twinfield.errors import Fault
from bookkeeping_svc.domain.invoices import OpenItem
from bookkeeping_svc.service_layer.gateway import Access, Gateway, Prepaid


async def customer_lines(
    gw: Gateway, access: Access, invoice_numbers: list[str], prepaid: Prepaid | None = None
) -> tuple[Access, list[OpenItem]]:
    """Customer lines of these invoice numbers, one ``equal`` request each (Twinfield shows no
    operator that lists several). ``prepaid``: the credits of the first request."""
    rows: list[OpenItem] = []
    year = datetime.now(UTC).year
    for index, number in enumerate(sorted(set(invoice_numbers))):
        request = documents.browse_customer_lines(number, year)
        access, root = await gw.call(access, request, prepaid if index == 0 else None)
        if not documents.ok(root):
            raise Fault("browse", documents.summary(documents.messages(root)))
        try:
            rows += documents.parse_browse(root)
        except documents.BrowseShapeError as exc:
            raise Fault("browse", str(exc)) from exc
    return access, rows


async def with_memo_texts(
    gw: Gateway, access: Access, items: list[OpenItem], sign: int, amounts: set[int]
) -> tuple[Access, list[OpenItem]]:
    """The rows with the description of our candidate MEMO lines filled in from a full read of
    their transaction: MEMO daybook, on the side ``sign`` (-1 credit: a payment, +1 debit: a
    reversal), for one of the ``amounts``, in a transaction with a line on one of our
    cross-accounts (a bookkeeper's own MEMO of the same invoice keeps no description). Other rows
    are returned as they are. Browse 100 has no description column, so the full read decides."""
    memo_daybook = access.accounts.memo_daybook
    cross = set(access.accounts.cross_accounts.values())
    texts: dict[tuple[str, int], str] = {}
    candidates = [
        r for r in items if r.daybook == memo_daybook and r.value_cents * sign > 0 and abs(r.value_cents) in amounts
    ]
    for number in sorted({r.number for r in candidates}):
        access, root = await gw.call(access, documents.read_transaction(access.office, memo_daybook, number))
        read = documents.parse_transaction_read(root)
        if read is None:
            # An unread candidate could be our MEMO: posting again could book it twice.
            raise Fault("read", documents.summary(documents.messages(root)))
        if not any(line.dim1 in cross and not line.dim2 for line in read):
            continue
        for line in read:
            texts[(number, line.id)] = line.description
    return access, [
        dataclasses.replace(r, description=texts.get((r.number, r.line), "")) if r in candidates else r for r in items
    ]


async def customer_emails(
    gw: Gateway, access: Access, customers: tuple[str, ...]
) -> tuple[Access, dict[str, str | None]]:
    emails: dict[str, str | None] = {}
    for code in customers:
        access, root = await gw.call(access, documents.read_customer(access.office, code))
        emails[code] = documents.customer_email(root) if documents.ok(root) else None
    return access, emails
