"""The look-up that decides "never twice": which candidate MEMO lines get our description from a
full read of their transaction, and that a read Twinfield refuses stops the round instead of
reading as "not ours" (which would post the payment again)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree

from bookkeeping_svc.adapters.twinfield.errors import Fault
from bookkeeping_svc.domain.booking import Accounts
from bookkeeping_svc.domain.invoices import OpenItem
from bookkeeping_svc.service_layer.booking.lookup import with_memo_texts

READ = """<transaction location="final" result="1"><header><code>MEMO</code><number>{number}</number></header><lines>
<line type="detail" id="1"><dim1>{cross}</dim1><dim2/><debitcredit>debit</debitcredit><value>121.00</value>
<description>F2025-0042</description></line>
<line type="detail" id="2"><dim1>1300</dim1><dim2>1001</dim2><debitcredit>credit</debitcredit><value>121.00</value>
<invoicenumber>F2025-0042</invoicenumber><description>F2025-0042</description></line></lines></transaction>"""
NOT_FOUND = (
    '<transaction result="0"><number msgtype="error" msg="Boeking bestaat niet." result="0">1</number></transaction>'
)


class Gateway:
    """Answers each transaction read from ``answers`` by number, and counts the reads."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.reads: list[str] = []

    async def call(self, access: Any, request: str, prepaid: Any = None) -> tuple[Any, etree._Element]:
        number = etree.fromstring(request).findtext("number") or ""
        self.reads.append(number)
        return access, etree.fromstring(self.answers[number])


def _row(number: str, cents: int = -12100, daybook: str = "MEMO") -> OpenItem:
    return OpenItem("NLA000123", daybook, number, 2, "1001", "F2025-0042", cents, 0, "available")


ACCESS = SimpleNamespace(office="NLA000123", accounts=Accounts())


async def test_only_candidates_on_our_cross_account_get_a_description() -> None:
    ours, other = READ.format(number="202500001", cross="1105"), READ.format(number="202500002", cross="1100")
    gateway = Gateway({"202500001": ours, "202500002": other})
    rows = [_row("202500001"), _row("202500002"), _row("202500003", cents=12100), _row("202500004", daybook="VRK")]
    _, found = await with_memo_texts(gateway, ACCESS, rows, -1, {12100})  # type: ignore[arg-type]
    # Read: the two MEMO credits of the paid amount; not the debit, not the sales line.
    assert gateway.reads == ["202500001", "202500002"]
    assert [r.description for r in found] == ["F2025-0042", "", "", ""]  # 1100 is no cross-account of ours


async def test_a_refused_read_stops_the_round_instead_of_reading_as_not_ours() -> None:
    gateway = Gateway({"202500001": NOT_FOUND})
    with pytest.raises(Fault):
        await with_memo_texts(gateway, ACCESS, [_row("202500001")], -1, {12100})  # type: ignore[arg-type]
