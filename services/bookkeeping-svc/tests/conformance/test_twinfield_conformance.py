"""Koppel's Twinfield XML against the shapes of real Twinfield XML.

Every file in ``fixtures/`` was written for Koppel after a public file of real Twinfield request
or response XML, named in its first line. Answers go through the client's parsers, asserted
field by field; requests Koppel builds are checked against the fixture's shape (elements,
attributes) and, for browse, against Twinfield's own browse-100 definition (fields, labels,
operators).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from bookkeeping_svc.adapters.twinfield import documents, ledger
from bookkeeping_svc.adapters.twinfield.answers import classify_messages, customer_update_error
from bookkeeping_svc.domain.booking import Accounts, Payment, payment_memo
from bookkeeping_svc.domain.invoices import Found, NotFound, resolve_invoice
from twinfield_sandbox import create_app
from twinfield_sandbox import testing as sandbox

FIXTURES = Path(__file__).parent / "fixtures"
SOURCE = re.compile(r"^<!-- follows [\w.-]+/[\w.-]+ [\w./-]+\.(xml|rb|php)\b")


def fixture_lines(name: str) -> list[str]:
    """A fixture's lines, read in its own encoding (UTF-8, or UTF-16 after a byte order mark)."""
    data = (FIXTURES / name).read_bytes()
    return data.decode("utf-16" if data[:2] in (b"\xfe\xff", b"\xff\xfe") else "utf-8").splitlines()


def load(name: str) -> etree._Element:
    return etree.fromstring((FIXTURES / name).read_bytes(), documents.PARSER)


def paths(root: etree._Element) -> set[str]:
    """Every element path and attribute of a document (``a/b``, ``a/b@c``), texts left out."""
    found = set()

    def walk(el: etree._Element, prefix: str) -> None:
        here = f"{prefix}/{el.tag}" if prefix else str(el.tag)
        found.add(here)
        found.update(f"{here}@{name}" for name in el.attrib)
        for child in el:
            if isinstance(child.tag, str):
                walk(child, here)

    walk(root, "")
    return found


def parsed(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.xml")))
def test_every_fixture_names_the_public_file_it_follows(name: str) -> None:
    first = fixture_lines(name)[0]
    assert SOURCE.match(first), first


# -- requests ----------------------------------------------------------------------------------


def _within_the_real_definition(request: etree._Element) -> None:
    definition = {
        col.findtext("field"): (col.findtext("label"), col.findtext("operator"))
        for col in load("browse-100-definition.xml").iter("column")
    }
    assert request.get("code") == "100"
    for column in request.findall("column"):
        field = column.findtext("field")
        assert field in definition, f"{field} is not in Twinfield's browse-100 definition"
        assert column.findtext("label") == definition[field][0]
        assert column.findtext("visible") == "true"
        if column.find("operator") is not None:
            assert column.findtext("operator") in ("equal", "between")
            assert column.findtext("operator") == definition[field][1]
    assert paths(request) <= paths(load("request-browse-100.xml"))


def test_browse_request_uses_only_fields_labels_and_operators_of_the_real_definition() -> None:
    request = parsed(documents.browse_customer_lines("F2025-0042", 2026))
    _within_the_real_definition(request)
    filters = {c.findtext("field"): (c.findtext("from"), c.findtext("to")) for c in request.iter("column")}
    assert filters["fin.trs.line.invnumber"][0] == "F2025-0042"
    assert filters["fin.trs.head.status"][0] == "normal"
    assert filters["fin.trs.head.yearperiod"] == ("1996/01", "2027/12")
    assert "fin.trs.head.office" not in filters and "fin.trs.line.description" not in filters


@pytest.mark.parametrize(
    ("request_xml", "filters"),
    [
        (
            ledger.period_lines("MEMO", "2025/03"),
            {
                "fin.trs.head.yearperiod": ("2025/03", "2025/03"),
                "fin.trs.head.code": ("MEMO", ""),
                "fin.trs.head.status": ("normal", ""),
            },
        ),
        (
            ledger.numbered_lines("VRK", 202500001, 202502000),
            {
                "fin.trs.head.code": ("VRK", ""),
                "fin.trs.head.number": ("202500001", "202502000"),
                "fin.trs.head.status": ("normal", ""),
            },
        ),
    ],
)
def test_reconciliation_browses_only_fields_of_the_real_definition(request_xml: str, filters: dict) -> None:
    request = parsed(request_xml)
    _within_the_real_definition(request)
    asked = {
        c.findtext("field"): (c.findtext("from"), c.findtext("to") or "")
        for c in request.iter("column")
        if c.find("operator") is not None
    }
    assert asked == filters
    assert [c.findtext("field") for c in request.iter("column")] == list(ledger.FIELDS)
    assert "fin.trs.line.description" not in ledger.FIELDS and "fin.trs.line.valuesigned" not in ledger.FIELDS


def test_reconciliation_reads_a_browse_answer_field_by_field_without_descriptions() -> None:
    lines = ledger.parse(load("browse-100-answer-ledger.xml"))
    assert [
        (
            x.daybook,
            x.number,
            x.line,
            x.period,
            x.customer,
            x.invoice_number,
            x.value_cents,
            x.matchstatus,
            x.matchnumber,
        )
        for x in lines
    ] == [
        ("MEMO", "202500017", 2, "2025/03", "1001", "F2025-0042", -12100, "matched", "4"),
        ("MEMO", "202500018", 2, "2025/03", "1002", "", -5000, "available", ""),
        ("MEMO", "202500019", 2, "2025/03", "1001", "F2025-0042", 12100, "available", ""),
    ]
    assert all(x.description == "" for x in lines)
    # An answer without the Betaalnr. column is refused, never read as "not matched".
    with pytest.raises(documents.BrowseShapeError, match=re.escape("fin.trs.line.matchnumber")):
        ledger.parse(load("browse-100-answer.xml"))


def test_browse_request_refuses_an_operator_twinfield_is_not_known_to_accept() -> None:
    with pytest.raises(ValueError, match="'in'"):
        documents.browse_columns(
            "100", [("fin.trs.line.invnumber", "Factuurnr.")], {"fin.trs.line.invnumber": ("in", "A,B", None)}
        )


def test_memo_request_has_the_shape_of_a_real_journal_transaction() -> None:
    payment = Payment("TX1", "F2025-0042", "1001", None, 12100, "direct_debit", date(2025, 3, 14))
    memo = payment_memo(payment, "1001", Accounts(freetext_field=1, cross_accounts={"direct_debit": "2010"}))
    request = parsed(documents.transactions("NLA000123", [memo]))
    fixture = load("request-transactions-memo.xml")
    assert paths(request) == paths(fixture)
    assert etree.tostring(request, method="c14n") == etree.tostring(_without_comments(fixture), method="c14n")


def _without_comments(root: etree._Element) -> etree._Element:
    """The fixture as one line: what Koppel writes has no layout white space."""
    text = etree.tostring(root, encoding="unicode")
    return etree.fromstring(re.sub(r">\s+<", "><", text).encode())


@pytest.mark.parametrize(
    ("built", "fixture"),
    [
        (
            lambda: documents.match(
                "NLA000123",
                [(documents.MatchLine("VRK", "202500042", 1), documents.MatchLine("MEMO", "202500017", 2))],
                date(2025, 3, 14),
            ),
            "request-match.xml",
        ),
        (lambda: documents.read_transaction("NLA000123", "MEMO", "202500017"), "request-read-transaction.xml"),
        (lambda: documents.read_customer("NLA000123", "1001"), "request-read-dimension.xml"),
    ],
)
def test_requests_are_exactly_the_real_shape(built: Callable[[], str], fixture: str) -> None:
    ours = parsed(built())
    assert etree.tostring(ours, method="c14n") == etree.tostring(_without_comments(load(fixture)), method="c14n")


# -- browse answers ----------------------------------------------------------------------------


def test_browse_answer_is_read_field_by_field_from_basevaluesigned() -> None:
    rows = documents.parse_browse(load("browse-100-answer.xml"))
    assert [(r.office, r.daybook, r.number, r.line) for r in rows] == [
        ("NLA000123", "VRK", "202500042", 1),
        ("NLA000123", "VRK", "202500017", 1),
        ("NLA000123", "MEMO", "202500003", 2),
        ("NLA000123", "ABN", "202500063", 3),
    ]
    assert [(r.customer, r.invoice_number, r.value_cents, r.open_cents, r.matchstatus) for r in rows] == [
        ("1001", "F2025-0042", 12100, 12100, "available"),
        ("1002", "F2025-0042", 1772900, 670802, "proposed"),
        ("1001", "F2025-0042", -12100, 0, "matched"),
        ("1001", "", -2742035, -2742035, "available"),
    ]
    assert all(r.description == "" for r in rows)  # browse 100 has no description column


def test_a_requested_column_missing_from_the_answer_is_an_error_never_zero() -> None:
    with pytest.raises(documents.BrowseShapeError, match=re.escape("fin.trs.line.basevaluesigned")):
        documents.parse_browse(load("browse-100-answer-other-value-column.xml"))


def test_an_invoice_in_a_payment_run_proposal_is_not_read_as_matched() -> None:
    rows = documents.parse_browse(load("browse-100-answer.xml"))
    payment = Payment("TX1", "F2025-0042", "1001", None, 12100, "direct_debit", date(2025, 3, 14))
    assert resolve_invoice(payment, rows) == Found(rows[0])
    proposed_only = [rows[1]]
    outcome = resolve_invoice(payment, proposed_only)
    assert isinstance(outcome, NotFound) and outcome.code == "invoice_in_payment_run"


# -- transaction answers -----------------------------------------------------------------------


def test_posted_transaction_gives_its_number() -> None:
    (posted,) = documents.parse_transactions(load("transactions-answer-ok.xml"))
    assert posted == documents.Posted(ok=True, number="202500017", messages=[])


def test_unbalanced_transaction_keeps_all_three_messages_next_to_a_successful_one() -> None:
    failed, booked = documents.parse_transactions(load("transactions-answer-unbalanced.xml"))
    assert not failed.ok and failed.number is None
    assert [(m.node, m.kind) for m in failed.messages] == [("transaction", "error")] * 3
    assert [m.text for m in failed.messages] == [
        "De boeking is niet in balans. Er ontbreekt 0.01 debet.",
        "De boeking balanceert niet in de basisvaluta. Er ontbreekt 0.01 debet.",
        "De boeking balanceert niet in de rapportagevaluta. Er ontbreekt 0.01 debet.",
    ]
    assert classify_messages(failed.messages).code == "validation"
    assert booked.ok and booked.number == "202500018"


def test_a_warning_only_answer_is_kept_apart_and_is_not_a_closed_period() -> None:
    (posted,) = documents.parse_transactions(load("transactions-answer-warning-only.xml"))
    assert not posted.ok
    assert [(m.node, m.kind) for m in posted.messages] == [("date", "warning")]
    assert classify_messages(posted.messages).code == "validation"


def test_a_transaction_in_a_closed_period_is_period_closed_not_a_validation_error() -> None:
    (posted,) = documents.parse_transactions(load("transactions-answer-period-closed.xml"))
    assert not posted.ok and posted.number is None
    assert [(m.node, m.kind, m.text) for m in posted.messages] == [
        ("date", "error", "De boeking kan niet gemaakt worden omdat periode 2025/03 niet bestaat")
    ]
    assert classify_messages(posted.messages).code == "period_closed"
    # The same message on <period> (a period sent explicitly) is decided by its element.
    on_period = [documents.Message("period", "Periode 2025/03 is niet beschikbaar.", "error")]
    assert classify_messages(on_period).code == "period_closed"


def test_the_sandbox_refuses_koppels_memo_in_a_closed_period_as_the_fixture_shows() -> None:
    with TestClient(create_app()) as http:
        assert http.post(f"/_sandbox/offices/{sandbox.OFFICE}/periods", json={"close": ["2025/03"]}).status_code == 200
        http.post(f"/_sandbox/offices/{sandbox.OFFICE}/customers", json={"customers": [{"code": "1001", "name": "K"}]})
        token = http.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": sandbox.ORG})
        payment = Payment("TX1", "F2025-0042", "1001", None, 12100, "direct_debit", date(2025, 3, 14))
        request = documents.transactions(sandbox.OFFICE, [payment_memo(payment, "1001", Accounts())])
        answer = sandbox.Twinfield(http, token.json()["access_token"]).failed(request)
    ours = documents.parse_transactions(answer)
    fixture = documents.parse_transactions(load("transactions-answer-period-closed.xml"))
    assert [(p.ok, p.number, p.messages) for p in ours] == [(p.ok, p.number, p.messages) for p in fixture]
    assert {path for path in paths(answer) if "@msg" in path or "@result" in path} == {
        path for path in paths(load("transactions-answer-period-closed.xml")) if "@msg" in path or "@result" in path
    }


def test_errors_are_classified_by_their_element_in_dutch_and_english() -> None:
    (posted,) = documents.parse_transactions(load("transactions-answer-errors-on-elements.xml"))
    by_node = {m.node: m for m in posted.messages}
    assert by_node["dim1"].text == "Dimensie 2010 bestaat niet."
    assert classify_messages([by_node["dim1"]]).code == "unknown_account"
    assert by_node["dim2"].text == "Dimension 9999 does not exist."
    assert classify_messages([by_node["dim2"]]).code == "unknown_customer"


def test_read_transaction_gives_each_line_with_its_description() -> None:
    lines = documents.parse_transaction_read(load("read-transaction-answer.xml"))
    assert lines == [
        documents.ReadLine(1, "2010", "", "debit", 12100, "", "F2025-0042"),
        documents.ReadLine(2, "1300", "1001", "credit", 12100, "F2025-0042", "F2025-0042"),
    ]


# -- match answers -----------------------------------------------------------------------------


def test_live_match_answer_with_root_match_and_a_set_of_unavailable_lines() -> None:
    done, refused = documents.parse_match(load("match-answer-live.xml"))
    assert done.ok and done.messages == []
    assert not refused.ok
    assert [(m.node, m.kind, m.text) for m in refused.messages] == [
        ("line", "error", "Boeking MEMO 202500018 regel 2 is niet beschikbaar voor afletteren."),
        ("line", "error", "Boeking VRK 202500043 regel 1 is niet beschikbaar voor afletteren."),
    ]
    assert classify_messages(refused.messages).code == "already_matched"


def test_match_answer_with_root_sets_and_a_line_that_does_not_exist() -> None:
    done, refused = documents.parse_match(load("match-answer-sets.xml"))
    assert done.ok and not refused.ok
    assert [m.text for m in refused.messages] == ["De regel bestaat niet."]


# -- customers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dimension-answer-not-found-en.xml", "Dimension 9999 does not exist."),
        ("dimension-answer-not-found-nl.xml", "Dimensie 9999 bestaat niet."),
    ],
)
def test_unknown_customer_in_english_and_dutch(name: str, text: str) -> None:
    root = load(name)
    ((ok, msgs),) = documents.parse_dimensions(root)
    assert not ok and [(m.node, m.text) for m in msgs] == [("code", text)]
    assert documents.customer_email(root) is None
    assert customer_update_error(msgs).code == "unknown_customer"


# -- SOAP --------------------------------------------------------------------------------------


def test_escaped_and_cdata_results_are_unwrapped() -> None:
    escaped = documents.parse_envelope((FIXTURES / "envelope-result-escaped.xml").read_bytes())
    assert isinstance(escaped, etree._Element) and escaped.tag == "dimension" and not documents.ok(escaped)
    cdata = documents.parse_envelope((FIXTURES / "envelope-result-cdata.xml").read_bytes())
    assert isinstance(cdata, etree._Element) and cdata.tag == "browse"
    assert documents.browse_rows(cdata, ["fin.trs.line.invnumber"]) == []


def test_a_utf16_answer_whose_result_declares_utf16_reads_as_its_utf8_twin() -> None:
    utf16 = (FIXTURES / "envelope-result-utf16.xml").read_bytes()
    assert utf16.startswith(b"\xfe\xff")  # the file really is UTF-16, as php-twinfield's capture
    root = documents.parse_envelope(utf16)
    twin = documents.parse_envelope((FIXTURES / "envelope-result-escaped.xml").read_bytes())
    assert isinstance(root, etree._Element) and isinstance(twin, etree._Element)
    assert etree.tostring(root) == etree.tostring(twin)
    ((ok, msgs),) = documents.parse_dimensions(root)
    assert not ok and [(m.node, m.kind, m.text) for m in msgs] == [("code", "error", "Dimensie 9999 bestaat niet.")]
    assert customer_update_error(msgs).code == "unknown_customer"


def test_fault_354_is_read_from_its_detail() -> None:
    fault = documents.parse_envelope((FIXTURES / "envelope-fault-354.xml").read_bytes())
    assert isinstance(fault, documents.Fault)
    assert (fault.code, fault.message) == ("354", "Access denied. Token invalid.")


def test_a_result_declaring_utf16_is_read_as_the_text_it_is() -> None:
    # No public capture shows it; a .NET string writer declares utf-16 on text that is not.
    inner = '<?xml version="1.0" encoding="utf-16"?><dimension result="1"><name>Caf\u00e9 B\u00e4r</name></dimension>'
    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<ProcessXmlStringResponse xmlns="http://www.twinfield.com/"><ProcessXmlStringResult>'
        + inner.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        + "</ProcessXmlStringResult></ProcessXmlStringResponse></soap:Body></soap:Envelope>"
    )
    root = documents.parse_envelope(envelope.encode("utf-8"))
    assert isinstance(root, etree._Element) and root.findtext("name") == "Caf\u00e9 B\u00e4r"
