"""Customers: read with e-mail and bank, list, and updating bank account and collect mandate."""

from __future__ import annotations

from lxml import etree

from twinfield_sandbox.testing import OFFICE, ORG, Twinfield, el_text, memo_xml, seed_customers


def _seed(http) -> None:
    seed_customers(
        http,
        {
            "code": "1001",
            "name": "Bakkerij De Korf",
            "email": "boekhouding@dekorf.nl",
            "iban": "NL91ABNA0417164300",
            "bic": "ABNANL2A",
        },
        {"code": "1002", "name": "Het Anker"},
    )


def _read(code: str) -> str:
    return f"<read><type>dimensions</type><office>{OFFICE}</office><dimtype>DEB</dimtype><code>{code}</code></read>"


def test_customer_read_shows_email_and_bank_account(tw, http) -> None:
    _seed(http)
    dimension = tw.ok(_read("1001"))
    assert dimension.tag == "dimension"
    assert dimension.get("status") == "active"
    assert el_text(dimension, "name") == "Bakkerij De Korf"
    address = dimension.find("addresses/address")
    assert address.get("type") == "invoice" and address.get("default") == "true"
    assert el_text(address, "email") == "boekhouding@dekorf.nl"
    bank = dimension.find("banks/bank")
    assert el_text(bank, "iban") == "NL91ABNA0417164300"
    assert el_text(bank, "biccode") == "ABNANL2A"
    assert el_text(dimension, "financials/substitutewith") == "1300"


def test_missing_customer_is_an_error_on_code(tw, http) -> None:
    _seed(http)
    result = tw.failed(_read("00590"))
    assert result.find("code").get("msg") == "Dimensie 00590 bestaat niet."


def test_a_user_whose_language_is_english_reads_the_english_message(http) -> None:
    """Twinfield answers in the user's language (pronamic/wp-twinfield tests/xml/Dimensions/
    dimension-read-response-dimension-does-not-exists-en-GB.xml); names stay on office and type."""
    reply = http.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": ORG, "language": "en"})
    result = Twinfield(http, reply.json()["access_token"]).failed(_read("9999"))
    assert result.find("code").get("msg") == "Dimension 9999 does not exist."
    assert result.find("office").get("name") and result.find("type").get("name") == "Debiteuren"
    memo = Twinfield(http, reply.json()["access_token"]).failed(memo_xml(customer="9999"))
    assert memo.find("transaction/lines/line[@id='2']/dim2").get("msg") == "Dimension 9999 does not exist."
    refused = http.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": ORG, "language": "de"})
    assert refused.status_code == 422


def test_list_customers(tw, http) -> None:
    _seed(http)
    result = tw.ok(f"<list><type>dimensions</type><office>{OFFICE}</office><dimtype>DEB</dimtype></list>")
    assert [d.text for d in result.findall("dimension")] == ["1001", "1002", "DEB"]
    assert result.find("dimension").get("name") == "Bakkerij De Korf"
    assert result.findall("dimension")[-1].get("name") == ""


def test_list_general_ledger_accounts_by_balance_sheet_and_profit_and_loss(tw, http) -> None:
    balance = tw.ok(f"<list><type>dimensions</type><office>{OFFICE}</office><dimtype>BAS</dimtype></list>")
    assert (balance.get("office"), balance.get("type")) == (OFFICE, "BAS")
    codes = [d.text for d in balance.findall("dimension")]
    assert "1300" in codes and "8000" not in codes and codes[-1] == "BAS"
    assert balance.find("dimension[.='1300']").get("name") == "Debiteuren"
    pnl = tw.ok(f"<list><type>dimensions</type><office>{OFFICE}</office><dimtype>PNL</dimtype></list>")
    assert "8000" in [d.text for d in pnl.findall("dimension")] and "1300" not in [d.text for d in pnl.findall("dimension")]
    http.post(f"/_sandbox/offices/{OFFICE}/accounts", json={"code": "1120", "name": "Kruisposten", "type": "BAS"})
    again = tw.ok(f"<list><type>dimensions</type><office>{OFFICE}</office><dimtype>BAS</dimtype></list>")
    assert "1120" in [d.text for d in again.findall("dimension")]


def test_list_of_an_office_the_token_cannot_use_is_refused(tw) -> None:
    result = tw.failed("<list><type>dimensions</type><office>NLA999999</office><dimtype>BAS</dimtype></list>")
    assert result.get("msg")


def _update(code: str, iban: str, mandate: str) -> str:
    root = etree.Element("dimensions")
    dimension = etree.SubElement(root, "dimension")
    for name, value in (("office", OFFICE), ("type", "DEB"), ("code", code)):
        etree.SubElement(dimension, name).text = value
    financials = etree.SubElement(dimension, "financials")
    etree.SubElement(financials, "payavailable").text = "true"
    etree.SubElement(financials, "paycode").text = "SEPANLDD"
    etree.SubElement(financials, "collectionschema").text = "core"
    collect = etree.SubElement(financials, "collectmandate")
    etree.SubElement(collect, "id").text = mandate
    etree.SubElement(collect, "signaturedate").text = "20250301"
    etree.SubElement(collect, "firstrundate").text = "20250315"
    bank = etree.SubElement(etree.SubElement(dimension, "banks"), "bank", default="true")
    etree.SubElement(bank, "ascription").text = "Het Anker BV"
    etree.SubElement(bank, "iban").text = iban
    etree.SubElement(bank, "biccode").text = "RABONL2U"
    return etree.tostring(root, encoding="unicode")


def test_updating_bank_account_and_collect_mandate(tw, http) -> None:
    _seed(http)
    result = tw.ok(_update("1002", "NL44RABO0123456789", "MNDT-2025-0001"))
    dimension = result.find("dimension")
    assert el_text(dimension, "financials/payavailable") == "true"
    assert el_text(dimension, "financials/paycode") == "SEPANLDD"
    assert el_text(dimension, "financials/collectmandate/id") == "MNDT-2025-0001"
    assert el_text(dimension, "financials/collectmandate/signaturedate") == "20250301"
    assert el_text(dimension, "banks/bank/iban") == "NL44RABO0123456789"
    assert el_text(tw.ok(_read("1002")), "financials/collectmandate/id") == "MNDT-2025-0001"

    # Same IBAN again updates that bank instead of adding one.
    tw.ok(_update("1002", "NL44RABO0123456789", "MNDT-2025-0002"))
    customer = http.get(f"/_sandbox/offices/{OFFICE}/customers/1002").json()
    assert len(customer["banks"]) == 1
    assert customer["mandate"]["id"] == "MNDT-2025-0002"

    # A new IBAN is added and becomes the default.
    tw.ok(_update("1002", "NL91ABNA0417164300", "MNDT-2025-0003"))
    customer = http.get(f"/_sandbox/offices/{OFFICE}/customers/1002").json()
    assert [(b["iban"], b["default"]) for b in customer["banks"]] == [
        ("NL44RABO0123456789", False),
        ("NL91ABNA0417164300", True),
    ]


def test_invalid_iban_is_refused_and_changes_nothing(tw, http) -> None:
    _seed(http)
    result = tw.failed(_update("1002", "NL00RABO0123456789", "MNDT-X"))
    assert result.find("dimension/banks/bank/iban").get("msg") == "IBAN NL00RABO0123456789 is ongeldig."
    customer = http.get(f"/_sandbox/offices/{OFFICE}/customers/1002").json()
    assert customer["banks"] == [] and customer["mandate"]["id"] == ""
