"""Bank (BNK) and cash (KAS) daybooks: the shape of php-twinfield/twinfield tests/
IntegrationTests/resources/bankTransactionSendRequest.xml and cashTransactionSendRequest.xml
accepted, and refused where Twinfield refuses it."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from twinfield_sandbox.testing import OFFICE, el_text, seed_customers

YEAR = date.today().year


@pytest.fixture(autouse=True)
def customer(http) -> None:
    seed_customers(http, {"code": "1001", "name": "Bakkerij De Korf", "email": "boekhouding@dekorf.nl"})


def bank_xml(
    *,
    code: str = "BNK",
    account: str = "1100",
    total: str | None = "435.55",
    detail: str = "435.55",
    statementnumber: str = "4",
    startvalue: str = "974.01",
    closevalue: str = "1409.56",
) -> str:
    """A bank statement line received from a customer: the bank's total line debit, the
    customer's detail line credit with the invoice it pays."""
    root = etree.Element("transactions")
    tx = etree.SubElement(root, "transaction", destiny="temporary", raisewarning="false")
    header = etree.SubElement(tx, "header")
    for name, value in (
        ("office", OFFICE),
        ("code", code),
        ("currency", "EUR"),
        ("date", f"{YEAR}1104"),
        ("statementnumber", statementnumber),
        ("startvalue", startvalue),
        ("closevalue", closevalue),
    ):
        etree.SubElement(header, name).text = value
    lines = etree.SubElement(tx, "lines")
    if total is not None:
        line = etree.SubElement(lines, "line", id="1", type="total")
        for name, value in (("dim1", account), ("debitcredit", "debit"), ("value", total)):
            etree.SubElement(line, name).text = value
    line = etree.SubElement(lines, "line", id="2", type="detail")
    for name, value in (
        ("dim1", "1300"),
        ("dim2", "1001"),
        ("debitcredit", "credit"),
        ("value", detail),
        ("invoicenumber", "11001770"),
        ("description", "Invoice paid"),
    ):
        etree.SubElement(line, name).text = value
    return etree.tostring(root, encoding="unicode")


@pytest.mark.parametrize(("code", "account", "name"), [("BNK", "1100", "Bank"), ("KAS", "1000", "Kas")])
def test_a_bank_or_cash_receipt_is_booked_with_its_statement_and_an_open_customer_line(tw, code, account, name) -> None:
    tx = tw.ok(bank_xml(code=code, account=account)).find("transaction")
    assert (tx.get("location"), tx.get("result")) == ("temporary", "1")
    assert tx.find("header/code").get("name") == name
    assert [el_text(tx, f"header/{n}") for n in ("statementnumber", "startvalue", "closevalue")] == [
        "4",
        "974.01",
        "1409.56",
    ]
    assert el_text(tx, "header/number") == f"{YEAR}00001" and el_text(tx, "header/period") == f"{YEAR}/11"
    total, detail = tx.findall("lines/line")
    assert (total.get("type"), el_text(total, "dim1"), el_text(total, "matchstatus")) == (
        "total",
        account,
        "notmatchable",
    )
    assert (el_text(detail, "dim2"), el_text(detail, "matchstatus"), el_text(detail, "matchlevel")) == (
        "1001",
        "available",
        "2",
    )


def test_a_bank_transaction_without_a_total_line_or_with_two_is_refused(tw) -> None:
    root = etree.fromstring(bank_xml(total=None))
    extra = etree.SubElement(root.find("transaction/lines"), "line", id="1", type="detail")
    for name, value in (("dim1", "4500"), ("debitcredit", "debit"), ("value", "435.55")):
        etree.SubElement(extra, name).text = value
    without = tw.failed(etree.tostring(root, encoding="unicode")).find("transaction")
    assert without.get("msg") == "Een bankboeking moet precies één totaalregel hebben."
    root = etree.fromstring(bank_xml(detail="871.10"))
    lines = root.find("transaction/lines")
    lines.insert(1, etree.fromstring(etree.tostring(lines[0])))
    lines[1].set("id", "2")
    twice = tw.failed(etree.tostring(root, encoding="unicode")).find("transaction")
    assert "precies één totaalregel" in twice.get("msg")


def test_the_total_line_must_be_on_the_daybooks_own_account(tw) -> None:
    result = tw.failed(bank_xml(account="1105")).find("transaction/lines/line[@type='total']/dim1")
    assert (result.get("msgtype"), result.get("msg")) == ("error", "Rekening 1105 is niet de rekening van dagboek BNK.")


def test_an_unbalanced_bank_transaction_gets_all_three_messages(tw) -> None:
    tx = tw.failed(bank_xml(total="0.01", detail="0.02")).find("transaction")
    assert tx.get("msg").split("//") == [
        "De boeking is niet in balans. Er ontbreekt 0.01 debet.",
        "De boeking balanceert niet in de basisvaluta. Er ontbreekt 0.01 debet.",
        "De boeking balanceert niet in de rapportagevaluta. Er ontbreekt 0.01 debet.",
    ]


@pytest.mark.parametrize(("field", "value"), [("statementnumber", "vier"), ("startvalue", "9,74"), ("closevalue", "x")])
def test_a_statement_header_that_is_no_number_is_refused(tw, field, value) -> None:
    result = tw.failed(bank_xml(**{field: value}))
    assert result.find(f"transaction/header/{field}").get("msgtype") == "error"


def test_a_memo_still_takes_no_total_line(tw) -> None:
    result = tw.failed(bank_xml(code="MEMO"))
    line = result.find("transaction/lines/line[@type='total']")
    assert line.get("msg") == "Een memoriaalboeking kent geen totaalregel (type total)."
