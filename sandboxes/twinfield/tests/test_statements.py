"""Electronic bank statements (`<statement target="electronicstatements">`) as pronamic/
wp-twinfield tests/xml/BankStatements/create-bank-statement-request.xml, -response.xml and
-error-response.xml show them: imported once, refused as a duplicate the second time."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from twinfield_sandbox.testing import OFFICE, el_text

YEAR = date.today().year


def statement_xml(
    *, code: str = "BNK", day: str = "1201", value: str = "10.25", iban: str = "NL91ABNA0417164300"
) -> str:
    root = etree.Element("statement", target="electronicstatements")
    for name, text in (("code", code), ("date", f"{YEAR}{day}"), ("statementnumber", f"{YEAR}{day}")):
        etree.SubElement(root, name).text = text
    item = etree.SubElement(etree.SubElement(root, "transactions"), "transaction")
    for name, text in (
        ("contraiban", iban),
        ("type", "NMSC"),
        ("reference", ""),
        ("debitcredit", "debit"),
        ("value", value),
        ("description", "Test description"),
    ):
        etree.SubElement(item, name).text = text
    return etree.tostring(root, encoding="unicode")


def test_a_statement_is_imported_with_its_daybook_count_and_running_balance(tw) -> None:
    first = tw.ok(statement_xml())
    assert (first.tag, first.get("target"), first.get("importduplicate")) == ("statement", "electronicstatements", "0")
    assert first.find("code").get("name") == "Bank"
    assert first.find("transactions").get("count") == "1"
    assert [el_text(first, n) for n in ("currency", "startvalue", "closevalue")] == ["EUR", "0.0000", "-10.2500"]
    assert first.find("office").text == OFFICE
    assert [child.tag for child in first][-4:] == ["currency", "startvalue", "closevalue", "office"]
    second = tw.ok(statement_xml(day="1202", value="5.00"))
    assert [el_text(second, n) for n in ("startvalue", "closevalue")] == ["-10.2500", "-15.2500"]


def test_the_same_statement_again_is_refused_as_a_duplicate(tw) -> None:
    tw.ok(statement_xml())
    again = tw.failed(statement_xml())
    assert (again.get("status"), again.get("importduplicate"), again.get("msgtype")) == ("fail", "0", "error")
    assert again.get("msg") == (
        f"Duplicate found: The statement conflicts with statement BNK {YEAR}1201 (1) in company {OFFICE}."
    )
    assert [el_text(again, n) for n in ("currency", "startvalue", "closevalue")] == ["", "", ""]
    # Another statement of the same day is not a duplicate.
    assert tw.ok(statement_xml(value="99.00")).get("result") == "1"


@pytest.mark.parametrize(
    ("request_xml", "where"),
    [
        (statement_xml(code="MEMO"), "code"),
        (statement_xml(code="NOPE"), "code"),
        (statement_xml(day="1340"), "date"),
        (statement_xml(value="-1.00"), "transactions/transaction/value"),
        (statement_xml(iban="NL00BANK0123456789"), "transactions/transaction/contraiban"),
    ],
)
def test_a_statement_twinfield_would_not_take_is_refused_on_the_element(tw, request_xml, where) -> None:
    refused = tw.failed(request_xml)
    assert refused.find(where).get("msgtype") == "error"


def test_a_statement_needs_its_target_and_a_transaction(tw) -> None:
    root = etree.fromstring(statement_xml())
    del root.attrib["target"]
    assert tw.failed(etree.tostring(root, encoding="unicode")).get("msgtype") == "error"
    root = etree.fromstring(statement_xml())
    root.find("transactions").remove(root.find("transactions/transaction"))
    assert tw.failed(etree.tostring(root, encoding="unicode")).find("transactions").get("msgtype") == "error"
