from datetime import date

from lxml import etree

from bookkeeping_svc.adapters.twinfield import documents
from bookkeeping_svc.domain.booking import Accounts, Payment, payment_memo


def test_transactions_document_has_the_memo_lines_in_twinfield_shape() -> None:
    payment = Payment("TX1", "F1", "1001", None, 12100, "direct_debit", date(2025, 3, 14))
    xml = documents.transactions("NLA000001", [payment_memo(payment, "1001", Accounts(freetext_field=1))])
    root = etree.fromstring(xml)
    tx = root.find("transaction")
    assert tx is not None and tx.get("destiny") == "final" and tx.get("raisewarning") == "false"
    assert root.findtext("transaction/header/office") == "NLA000001"
    assert root.findtext("transaction/header/code") == "MEMO"
    assert root.findtext("transaction/header/date") == "20250314"
    assert root.findtext("transaction/header/freetext1") == "TX1"
    lines = root.findall("transaction/lines/line")
    assert [ln.get("id") for ln in lines] == ["1", "2"]
    assert lines[1].findtext("dim2") == "1001" and lines[1].findtext("value") == "121.00"
    assert lines[1].findtext("invoicenumber") == "F1"


def test_browse_answer_rows_carry_the_match_key() -> None:
    fields = documents.LOOKUP_FIELDS
    th = "".join(f"<td>{name}</td>" for name in fields)
    values = {
        "fin.trs.line.dim2": "1001",
        "fin.trs.line.invnumber": "F1",
        "fin.trs.line.basevaluesigned": "121.00",
        "fin.trs.line.openbasevaluesigned": "121.00",
        "fin.trs.line.matchstatus": "available",
    }
    tds = "".join(f'<td field="{name}">{values.get(name, "")}</td>' for name in fields)
    answer = etree.fromstring(
        f"""<browse result="1" first="1" last="1" total="1"><th>{th}</th><tr>{tds}
        <key><office>NLA000001</office><code>VRK</code><number>202500042</number><line>1</line></key></tr>
        </browse>""".encode()
    )
    (row,) = documents.parse_browse(answer)
    assert (row.daybook, row.number, row.line, row.customer, row.open_cents) == ("VRK", "202500042", 1, "1001", 12100)


def test_error_messages_joined_with_slashes_are_split() -> None:
    root = etree.fromstring(
        b'<transactions result="0"><transaction result="0" msgtype="error" msg="A.//B."><header/></transaction>'
        b"</transactions>"
    )
    (posted,) = documents.parse_transactions(root)
    assert not posted.ok and [m.text for m in posted.messages] == ["A.", "B."]


def test_soap_envelope_round_trip_and_fault() -> None:
    env = etree.fromstring(documents.envelope("tok", "NLA000001", "<read/>"))
    assert env.findtext(f".//{{{documents.TNS}}}AccessToken") == "tok"
    assert env.findtext(f".//{{{documents.TNS}}}xmlRequest") == "<read/>"
    fault = documents.parse_envelope(
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        b"<faultcode>soap:Client</faultcode><faultstring>Access denied. Token invalid.</faultstring>"
        b"<detail><message>Access denied. Token invalid.</message><code>354</code></detail>"
        b"</soap:Fault></soap:Body></soap:Envelope>"
    )
    assert isinstance(fault, documents.Fault)
    assert (fault.code, fault.message) == ("354", "Access denied. Token invalid.")
