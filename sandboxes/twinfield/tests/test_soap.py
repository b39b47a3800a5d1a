"""The ProcessXml SOAP service: a zeep client built from the served WSDL, ProcessXmlDocument,
header checks and token faults."""

from __future__ import annotations

import httpx
import pytest
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from twinfield_sandbox.testing import OFFICE, SOAP11, TNS, envelope, memo_xml, seed_customers


@pytest.fixture
def zeep_client(server) -> zeep.Client:
    return zeep.Client(f"{server.base_url}/webservices/processxml.asmx?wsdl", transport=Transport(timeout=10))


def _header(client: zeep.Client, token: str, office: str | None = OFFICE):
    header = client.get_element("{http://www.twinfield.com/}Header")
    return header(AccessToken=token, CompanyCode=office, CompanyId=None)


def test_zeep_client_from_served_wsdl_books_a_memo_with_process_xml_string(zeep_client, token, http) -> None:
    seed_customers(http, {"code": "1001", "name": "De Korf", "email": "a@dekorf.nl"})
    answer = zeep_client.service.ProcessXmlString(xmlRequest=memo_xml(), _soapheaders=[_header(zeep_client, token)])
    result = etree.fromstring(answer.encode())
    assert result.get("result") == "1"
    number = result.findtext("transaction/header/number")
    assert http.get(f"/_sandbox/offices/{OFFICE}/transactions/MEMO/{number}").status_code == 200


def test_zeep_list_offices_needs_no_company(zeep_client, token) -> None:
    header = zeep_client.get_element("{http://www.twinfield.com/}Header")(AccessToken=token, CompanyId=None)
    answer = zeep_client.service.ProcessXmlString(xmlRequest="<list><type>offices</type></list>", _soapheaders=[header])
    result = etree.fromstring(answer.encode())
    assert result.tag == "offices"
    assert [office.text for office in result.findall("office")] == [OFFICE]


def test_zeep_sees_fault_354_for_an_expired_token(zeep_client, token, http) -> None:
    http.post("/_sandbox/clock/advance", json={"seconds": 3601})
    with pytest.raises(zeep.exceptions.Fault) as caught:
        zeep_client.service.ProcessXmlString(
            xmlRequest="<list><type>offices</type></list>", _soapheaders=[_header(zeep_client, token)]
        )
    assert caught.value.message == "Access denied. Token invalid."
    assert caught.value.detail.findtext("code") == "354"


def test_expired_token_is_http_401_soap_fault_with_code_354(tw, http) -> None:
    http.post("/_sandbox/tokens/expire", json={})
    reply = tw.call("<list><type>offices</type></list>", office=None)
    assert reply.status == 401
    assert reply.fault.findtext("faultcode") == "soap:Client"
    assert reply.fault.findtext("faultstring") == "Access denied. Token invalid."
    assert reply.fault.findtext("detail/code") == "354"
    assert reply.fault.findtext("detail/source") == "ProcessXmlString"


def test_unknown_token_is_fault_354(tw) -> None:
    reply = tw.call("<list><type>offices</type></list>", token="not-a-token")
    assert reply.status == 401
    assert reply.fault.findtext("detail/code") == "354"


def test_missing_company_is_fault_101_except_for_list_offices(tw) -> None:
    reply = tw.call(
        f"<read><type>dimensions</type><office>{OFFICE}</office><dimtype>DEB</dimtype><code>1</code></read>",
        office=None,
    )
    assert reply.status == 500
    assert reply.fault.findtext("detail/code") == "101"


def test_company_of_another_organisation_is_fault_102(tw, http) -> None:
    http.post("/_sandbox/organisations", json={"code": "OTHER", "offices": [{"code": "NLA999999"}]})
    reply = tw.call("<list><type>offices</type></list>", office="NLA999999")
    assert reply.status == 403
    assert reply.fault.findtext("detail/code") == "102"


def test_invalid_inner_xml_is_fault_187(tw) -> None:
    reply = tw.call("<transactions><transaction>")
    assert reply.status == 500
    assert reply.fault.findtext("detail/code") == "187"


def test_process_xml_document_takes_and_returns_literal_xml(http: httpx.Client, token: str) -> None:
    reply = http.post(
        "/webservices/processxml.asmx",
        content=envelope(token, "<list><type>offices</type></list>", document=True),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}ProcessXmlDocument"'},
    )
    assert reply.status_code == 200
    env = etree.fromstring(reply.content)
    result = env.find(f"{{{SOAP11}}}Body/{{{TNS}}}ProcessXmlDocumentResponse/{{{TNS}}}ProcessXmlDocumentResult")
    offices = result[0]
    assert offices.tag == "offices"
    assert offices.get("result") == "1"


def test_soap12_envelope_gets_a_soap12_answer(http, token) -> None:
    soap12 = "http://www.w3.org/2003/05/soap-envelope"
    env = etree.Element(f"{{{soap12}}}Envelope", nsmap={"soap12": soap12})
    header = etree.SubElement(etree.SubElement(env, f"{{{soap12}}}Header"), f"{{{TNS}}}Header")
    etree.SubElement(header, f"{{{TNS}}}AccessToken").text = token
    call = etree.SubElement(etree.SubElement(env, f"{{{soap12}}}Body"), f"{{{TNS}}}ProcessXmlString")
    etree.SubElement(call, f"{{{TNS}}}xmlRequest").text = "<list><type>offices</type></list>"
    reply = http.post(
        "/webservices/processxml.asmx",
        content=etree.tostring(env),
        headers={"Content-Type": "application/soap+xml; charset=utf-8"},
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/soap+xml")
    assert etree.fromstring(reply.content).tag == f"{{{soap12}}}Envelope"


def test_wsdl_points_at_this_sandbox(http, server) -> None:
    wsdl = etree.fromstring(http.get("/webservices/processxml.asmx?wsdl").content)
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == f"{server.base_url}/webservices/processxml.asmx"


def test_company_id_guid_selects_the_office(http, token) -> None:
    office_id = http.get(f"/_sandbox/offices/{OFFICE}").json()["id"]
    env = etree.fromstring(envelope(token, "<list><type>offices</type></list>", office=None))
    header = env.find(f"{{{SOAP11}}}Header/{{{TNS}}}Header")
    company_id = header.find(f"{{{TNS}}}CompanyId")
    company_id.attrib.clear()
    company_id.text = office_id
    read = f"<read><type>dimensions</type><office>{OFFICE}</office><dimtype>DEB</dimtype><code>X</code></read>"
    env.find(f".//{{{TNS}}}xmlRequest").text = read
    reply = http.post(
        "/webservices/processxml.asmx", content=etree.tostring(env), headers={"Content-Type": "text/xml; charset=utf-8"}
    )
    assert reply.status_code == 200
    inner = etree.fromstring(etree.fromstring(reply.content).find(f".//{{{TNS}}}ProcessXmlStringResult").text.encode())
    assert inner.find("code").get("msg") == "Dimensie X bestaat niet."


def test_a_malformed_envelope_gets_a_soap_fault_not_plain_text(http) -> None:
    reply = http.post(
        "/webservices/processxml.asmx",
        content=b"<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>",
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '"http://www.twinfield.com/ProcessXmlString"',
        },
    )
    assert reply.status_code == 500
    fault = etree.fromstring(reply.content).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault is not None and fault.findtext("faultcode") == "soap:Client"
    assert fault.findtext("faultstring").startswith("Server was unable to read request.")


def test_answers_are_utf8_with_a_result_that_declares_nothing(tw) -> None:
    """Every public capture of a ProcessXmlString answer (murb/twinfield spec/fixtures/cluster/
    processxml/*) is a UTF-8 envelope whose result starts at its root element; none shows the
    utf-16 declaration some .NET services put inside, so the sandbox does not either."""
    reply = tw.call("<list><type>offices</type></list>")
    assert reply.headers["content-type"] == "text/xml; charset=utf-8"
    assert reply.text.startswith("<?xml version='1.0' encoding='utf-8'?>")
    env = etree.fromstring(reply.text.encode())
    result = env.findtext(f"{{{SOAP11}}}Body/{{{TNS}}}ProcessXmlStringResponse/{{{TNS}}}ProcessXmlStringResult")
    assert result.startswith('<offices result="1">')


def test_a_utf16_request_is_read(http: httpx.Client, token: str) -> None:
    """Twinfield names UTF-16 among the encodings a request may use (developers.twinfield.com
    documentation/api/types/xml-web-services, "Character encoding"): an envelope sent as UTF-16
    and a request document declaring utf-16 are both read."""
    inner = '<?xml version="1.0" encoding="utf-16"?><list><type>offices</type></list>'
    body = envelope(token, inner, OFFICE).decode().replace("encoding='utf-8'", "encoding='utf-16'")
    reply = http.post(
        "/webservices/processxml.asmx",
        content=body.encode("utf-16"),
        headers={"Content-Type": "text/xml; charset=utf-16", "SOAPAction": f'"{TNS}ProcessXmlString"'},
    )
    assert reply.status_code == 200, reply.text
    env = etree.fromstring(reply.content)
    result = env.findtext(f"{{{SOAP11}}}Body/{{{TNS}}}ProcessXmlStringResponse/{{{TNS}}}ProcessXmlStringResult")
    offices = etree.fromstring(result.encode(), etree.XMLParser(encoding="utf-8"))
    assert offices.get("result") == "1" and [o.text for o in offices.findall("office")] == [OFFICE]
