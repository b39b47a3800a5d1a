"""Helpers for talking to a running sandbox the way a Twinfield client would: SOAP envelopes
built with lxml, a ProcessXmlString caller, seeding through the control API, and a MEMO builder.

Used by the sandbox's own tests; other test suites may use them to arrange data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date as _date

import httpx
from lxml import etree

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://www.twinfield.com/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
OFFICE = "NLA000001"
ORG = "KOPPEL"


def envelope(
    token: str | None, request_xml: str | etree._Element, office: str | None = OFFICE, document: bool = False
) -> bytes:
    env = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11, "xsi": XSI})
    header = etree.SubElement(etree.SubElement(env, f"{{{SOAP11}}}Header"), f"{{{TNS}}}Header", nsmap={None: TNS})
    if token is not None:
        etree.SubElement(header, f"{{{TNS}}}AccessToken").text = token
    if office is not None:
        etree.SubElement(header, f"{{{TNS}}}CompanyCode").text = office
    etree.SubElement(header, f"{{{TNS}}}CompanyId").set(f"{{{XSI}}}nil", "true")
    body = etree.SubElement(env, f"{{{SOAP11}}}Body")
    op = "ProcessXmlDocument" if document else "ProcessXmlString"
    wrapper = etree.SubElement(body, f"{{{TNS}}}{op}", nsmap={None: TNS})
    request_el = etree.SubElement(wrapper, f"{{{TNS}}}xmlRequest")
    if document:
        request_el.append(etree.fromstring(request_xml) if isinstance(request_xml, str) else request_xml)
    else:
        request_el.text = (
            request_xml if isinstance(request_xml, str) else etree.tostring(request_xml, encoding="unicode")
        )
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    root: etree._Element | None  # the inner Twinfield document
    fault: etree._Element | None
    text: str


class Twinfield:
    """Posts ProcessXmlString requests the way a real client would."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.token = token

    def call(self, request_xml: str, office: str | None = OFFICE, token: str | None = "default") -> Reply:
        used = self.token if token == "default" else token
        reply = self.http.post(
            "/webservices/processxml.asmx",
            content=envelope(used, request_xml, office),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}ProcessXmlString"'},
        )
        if reply.status_code == 429 or not reply.content.startswith(b"<?xml"):
            return Reply(reply.status_code, reply.headers, None, None, reply.text)
        env = etree.fromstring(reply.content)
        fault = env.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
        if fault is not None:
            return Reply(reply.status_code, reply.headers, None, fault, reply.text)
        result = env.find(f"{{{SOAP11}}}Body/{{{TNS}}}ProcessXmlStringResponse/{{{TNS}}}ProcessXmlStringResult")
        return Reply(reply.status_code, reply.headers, etree.fromstring(result.text.encode()), None, reply.text)

    def ok(self, request_xml: str, office: str | None = OFFICE) -> etree._Element:
        reply = self.call(request_xml, office)
        assert reply.status == 200, reply.text
        assert reply.root is not None, reply.text
        assert reply.root.get("result") == "1", etree.tostring(reply.root, encoding="unicode")
        return reply.root

    def failed(self, request_xml: str, office: str | None = OFFICE) -> etree._Element:
        reply = self.call(request_xml, office)
        assert reply.status == 200, reply.text
        assert reply.root is not None, reply.text
        assert reply.root.get("result") == "0", etree.tostring(reply.root, encoding="unicode")
        return reply.root


def seed_customers(http: httpx.Client, *customers: dict) -> None:
    reply = http.post(f"/_sandbox/offices/{OFFICE}/customers", json={"customers": list(customers)})
    assert reply.status_code == 201, reply.text


def seed_invoices(http: httpx.Client, *invoices: dict) -> list[dict]:
    reply = http.post(f"/_sandbox/offices/{OFFICE}/invoices", json={"invoices": list(invoices)})
    assert reply.status_code == 201, reply.text
    return reply.json()["created"]


def memo_xml(
    *,
    amount: str = "121.00",
    customer: str = "1001",
    invoice: str = "F2025-0042",
    date: str | None = None,
    period: str | None = None,
    description: str = "Betaling F2025-0042",
    destiny: str = "final",
    raisewarning: str | None = "false",
    debit_account: str = "1105",
    credit_amount: str | None = None,
) -> str:
    """A two-line MEMO booking of a received payment, built with lxml."""
    today = _date.today()
    date = date or today.strftime("%Y%m%d")
    root = etree.Element("transactions")
    tx = etree.SubElement(root, "transaction", destiny=destiny)
    if raisewarning is not None:
        tx.set("raisewarning", raisewarning)
    header = etree.SubElement(tx, "header")
    for name, value in (("office", OFFICE), ("code", "MEMO"), ("currency", "EUR"), ("date", date)):
        etree.SubElement(header, name).text = value
    if period:
        etree.SubElement(header, "period").text = period
    lines = etree.SubElement(tx, "lines")
    line1 = etree.SubElement(lines, "line", type="detail", id="1")
    for name, value in (
        ("dim1", debit_account),
        ("debitcredit", "debit"),
        ("value", amount),
        ("description", description),
    ):
        etree.SubElement(line1, name).text = value
    line2 = etree.SubElement(lines, "line", type="detail", id="2")
    for name, value in (
        ("dim1", "1300"),
        ("dim2", customer),
        ("debitcredit", "credit"),
        ("value", credit_amount or amount),
        ("invoicenumber", invoice),
        ("description", description),
    ):
        etree.SubElement(line2, name).text = value
    return etree.tostring(root, encoding="unicode")


def el_text(root: etree._Element, path: str) -> str:
    found = root.find(path)
    assert found is not None, f"{path} missing in {etree.tostring(root, encoding='unicode')}"
    return (found.text or "").strip()
