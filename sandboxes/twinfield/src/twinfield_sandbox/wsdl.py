"""The ProcessXml WSDL, built with lxml and pointing at this sandbox.

Same target namespace, messages, header type and SOAP actions as Twinfield's (reference §2.2), so
generated clients (zeep, .NET) bind to it unchanged. `ProcessXmlCompressed` is left out: it is
past end of life.
"""

from __future__ import annotations

from lxml import etree

TNS = "http://www.twinfield.com/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
MSTYPES = "http://microsoft.com/wsdl/types/"
NSMAP = {"wsdl": WSDL, "s": XS, "soap": SOAP11, "soap12": SOAP12, "tns": TNS, "s1": MSTYPES}
OPERATIONS = ("ProcessXmlString", "ProcessXmlDocument")


def _w(tag: str) -> str:
    return f"{{{WSDL}}}{tag}"


def _s(tag: str) -> str:
    return f"{{{XS}}}{tag}"


def _element(schema: etree._Element, name: str, child: str, *, string: bool) -> None:
    el = etree.SubElement(schema, _s("element"), name=name)
    seq = etree.SubElement(etree.SubElement(el, _s("complexType")), _s("sequence"))
    attrs = {"minOccurs": "0", "maxOccurs": "1", "name": child}
    if string:
        etree.SubElement(seq, _s("element"), type="s:string", **attrs)
    else:
        inner = etree.SubElement(seq, _s("element"), **attrs)
        mixed = etree.SubElement(inner, _s("complexType"), mixed="true")
        etree.SubElement(etree.SubElement(mixed, _s("sequence")), _s("any"))


def build(location: str) -> bytes:
    root = etree.Element(_w("definitions"), nsmap=NSMAP, targetNamespace=TNS)
    etree.SubElement(root, _w("documentation")).text = "Twinfield Process XML web service methods (sandbox)."
    types = etree.SubElement(root, _w("types"))
    schema = etree.SubElement(types, _s("schema"), elementFormDefault="qualified", targetNamespace=TNS)
    etree.SubElement(schema, _s("import"), namespace=MSTYPES)
    _element(schema, "ProcessXmlString", "xmlRequest", string=True)
    _element(schema, "ProcessXmlStringResponse", "ProcessXmlStringResult", string=True)
    etree.SubElement(schema, _s("element"), name="Header", type="tns:Header")
    header = etree.SubElement(schema, _s("complexType"), name="Header")
    seq = etree.SubElement(header, _s("sequence"))
    for name in ("SessionID", "AccessToken", "CompanyCode"):
        etree.SubElement(seq, _s("element"), minOccurs="0", maxOccurs="1", name=name, type="s:string")
    etree.SubElement(
        seq, _s("element"), minOccurs="1", maxOccurs="1", name="CompanyId", nillable="true", type="s1:guid"
    )
    etree.SubElement(header, _s("anyAttribute"))
    _element(schema, "ProcessXmlDocument", "xmlRequest", string=False)
    _element(schema, "ProcessXmlDocumentResponse", "ProcessXmlDocumentResult", string=False)
    guid_schema = etree.SubElement(types, _s("schema"), elementFormDefault="qualified", targetNamespace=MSTYPES)
    guid = etree.SubElement(guid_schema, _s("simpleType"), name="guid")
    restriction = etree.SubElement(guid, _s("restriction"), base="s:string")
    etree.SubElement(
        restriction,
        _s("pattern"),
        value="[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    )

    for op in OPERATIONS:
        for suffix, part, element in (
            ("SoapIn", "parameters", op),
            ("SoapOut", "parameters", f"{op}Response"),
            ("Header", "Header", "Header"),
        ):
            message = etree.SubElement(root, _w("message"), name=f"{op}{suffix}")
            etree.SubElement(message, _w("part"), name=part, element=f"tns:{element}")

    port_type = etree.SubElement(root, _w("portType"), name="ProcessXmlSoap")
    for op in OPERATIONS:
        operation = etree.SubElement(port_type, _w("operation"), name=op)
        etree.SubElement(operation, _w("input"), message=f"tns:{op}SoapIn")
        etree.SubElement(operation, _w("output"), message=f"tns:{op}SoapOut")

    for binding_name, ns in (("ProcessXmlSoap", SOAP11), ("ProcessXmlSoap12", SOAP12)):
        binding = etree.SubElement(root, _w("binding"), name=binding_name, type="tns:ProcessXmlSoap")
        etree.SubElement(binding, f"{{{ns}}}binding", transport="http://schemas.xmlsoap.org/soap/http")
        for op in OPERATIONS:
            operation = etree.SubElement(binding, _w("operation"), name=op)
            etree.SubElement(operation, f"{{{ns}}}operation", soapAction=f"{TNS}{op}", style="document")
            body_in = etree.SubElement(operation, _w("input"))
            etree.SubElement(body_in, f"{{{ns}}}body", use="literal")
            etree.SubElement(body_in, f"{{{ns}}}header", message=f"tns:{op}Header", part="Header", use="literal")
            body_out = etree.SubElement(operation, _w("output"))
            etree.SubElement(body_out, f"{{{ns}}}body", use="literal")

    service = etree.SubElement(root, _w("service"), name="ProcessXml")
    for port_name, ns in (("ProcessXmlSoap", SOAP11), ("ProcessXmlSoap12", SOAP12)):
        port = etree.SubElement(service, _w("port"), name=port_name, binding=f"tns:{port_name}")
        etree.SubElement(port, f"{{{ns}}}address", location=location)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)
