"""The ProcessXml SOAP endpoint, `{cluster}/webservices/processxml.asmx` (WSDL at `?wsdl`).

Order of work per request, as a real gateway would do it: read the envelope, check the access
token (fault 354) and company (fault 101/102), parse the inner Twinfield XML, roll the fault
dice, admit the request under the fair-use limits (429), process it, and wrap the answer in a
SOAP 1.1 or 1.2 envelope matching the request's.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from lxml import etree

from . import processxml, wsdl
from .context import Context
from .faults import FaultRule
from .limits import Rejection, cost_of
from .sandbox import Sandbox, get_sandbox
from .state import AccessToken, Office
from .tokens import valid_access_token
from .transactions import TooManyLines
from .xmlutil import SAFE_PARSER, STRING_PARSER, local_copy, to_string

log = logging.getLogger(__name__)

PATH = "/webservices/processxml.asmx"
TNS = wsdl.TNS
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
CONTENT_TYPES = {SOAP11: "text/xml; charset=utf-8", SOAP12: "application/soap+xml; charset=utf-8"}

router = APIRouter()


class SoapFault(Exception):
    def __init__(self, message: str, code: int, http_status: int, client_side: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.client_side = client_side


@router.get(PATH)
async def get_wsdl(request: Request) -> Response:
    sandbox = get_sandbox(request)
    location = sandbox.base_url(request) + PATH
    # ASMX serves the WSDL for `?wsdl` in any case; a bare GET gets it too, which is handier than
    # the HTML help page the real service shows.
    return Response(wsdl.build(location), media_type="text/xml; charset=utf-8")


@router.post(PATH)
async def post_process_xml(request: Request) -> Response:
    sandbox = get_sandbox(request)
    actor = sandbox.base_url(request) + PATH + "?wsdl"
    body = await request.body()
    version = SOAP11
    operation = "ProcessXmlString"
    try:
        envelope = _envelope_of(body)
        version = etree.QName(envelope).namespace if etree.QName(envelope).namespace in CONTENT_TYPES else SOAP11
        operation, payload = _operation(envelope, version)
        token = _authenticate(sandbox, envelope, version)
        root = _inner_document(operation, payload)
        office = _company(sandbox, envelope, version, token, root)
        ctx = Context(sandbox.state, token.client_id, token.organisation, token.user, office)
        return await _run(sandbox, request, ctx, operation, root, version, actor)
    except SoapFault as fault:
        return _fault_response(version, fault, operation, actor)


async def _run(
    sandbox: Sandbox,
    request: Request,
    ctx: Context,
    operation: str,
    root: etree._Element,
    version: str,
    actor: str,
) -> Response:
    op_name = processxml.operation_of(root)
    rule = sandbox.faults.pick(op_name, ctx.client_id)
    if rule is not None and (rule.when == "before" or rule.kind in ("rate_limit", "expired_token")):
        return await _injected(rule, version, operation, actor)

    client = sandbox.state.clients[ctx.client_id]
    cost = cost_of(root.tag, sandbox.config.limits)
    admission = sandbox.limiter.admit(
        client_id=ctx.client_id,
        organisation=ctx.organisation,
        ip=request.client.host if request.client else "unknown",
        certified=client.certified,
        operation=op_name,
        cost=cost,
        now=sandbox.state.now(),
    )
    if isinstance(admission, Rejection):
        return _too_many(admission.retry_after, admission.reason, admission.limit, admission.remaining)
    sandbox.limiter.enter(admission)
    try:
        if sandbox.config.latency_seconds:
            await asyncio.sleep(sandbox.config.latency_seconds)
        try:
            result = processxml.process(ctx, root)
        except TooManyLines:
            raise SoapFault("Transaction has more than 1000 lines.", 100, 400) from None
        except Exception:
            log.exception("unexpected error while processing %s", root.tag)
            raise SoapFault("Unexpected exception.", 100, 500, client_side=False) from None
        if rule is not None:
            # An "after" fault: the write above is applied, but the caller never hears of it.
            return await _injected(rule, version, operation, actor)
    finally:
        sandbox.limiter.leave(admission)
    response = _envelope(version, operation, result)
    response.headers["X-RateLimit-Limit"] = str(admission.limit)
    response.headers["X-RateLimit-Remaining"] = str(max(0, admission.remaining))
    response.headers["X-RateLimit-Credited"] = str(admission.cost)
    return response


# -- request parsing ----------------------------------------------------------------------------


def _envelope_of(body: bytes) -> etree._Element:
    """The SOAP envelope; malformed XML is answered like ASMX does, with a client fault."""
    try:
        return etree.fromstring(body, SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (1, 1)
        raise SoapFault(
            f"Server was unable to read request. ---> There is an error in XML document ({line}, {column}).", 100, 500
        ) from None


def _operation(envelope: etree._Element, version: str) -> tuple[str, etree._Element]:
    body = envelope.find(f"{{{version}}}Body")
    if body is None:
        raise SoapFault("Server was unable to read request: no SOAP Body.", 100, 500)
    payload = next((child for child in body if isinstance(child.tag, str)), None)
    if payload is None:
        raise SoapFault("Server was unable to read request: empty SOAP Body.", 100, 500)
    name = etree.QName(payload).localname
    if name not in wsdl.OPERATIONS:
        raise SoapFault(f"Server did not recognize the value of HTTP Header SOAPAction: {name}.", 100, 500)
    return name, payload


def _header_values(envelope: etree._Element, version: str) -> dict[str, str | None]:
    header = envelope.find(f"{{{version}}}Header")
    values: dict[str, str | None] = {}
    if header is None:
        return values
    for block in header:
        if not isinstance(block.tag, str) or etree.QName(block).localname != "Header":
            continue
        for child in block:
            if not isinstance(child.tag, str):
                continue
            nil = child.get(f"{{{XSI}}}nil") == "true"
            values[etree.QName(child).localname] = None if nil else (child.text or "").strip()
    return values


def _authenticate(sandbox: Sandbox, envelope: etree._Element, version: str) -> AccessToken:
    values = _header_values(envelope, version)
    raw = values.get("AccessToken")
    if not raw:
        if values.get("SessionID"):
            raise SoapFault("Access denied. Session login is not supported by the sandbox; use OAuth2.", 102, 403)
        raise SoapFault("Access denied. Access token and company (or session id) are missing.", 101, 500)
    token = valid_access_token(sandbox.state, raw)
    if token is None:
        raise SoapFault("Access denied. Token invalid.", 354, 401)
    return token


def _inner_document(operation: str, payload: etree._Element) -> etree._Element:
    request_el = next(
        (child for child in payload if isinstance(child.tag, str) and etree.QName(child).localname == "xmlRequest"),
        None,
    )
    if request_el is None:
        raise SoapFault("Invalid xml data: xmlRequest is missing.", 187, 500)
    if operation == "ProcessXmlString":
        text = request_el.text or ""
        try:
            root = etree.fromstring(text.encode("utf-8"), STRING_PARSER)
        except etree.XMLSyntaxError as exc:
            raise SoapFault(f"Invalid xml data: {exc}", 187, 500) from None
        return local_copy(root) if etree.QName(root).namespace else root
    inner = next((child for child in request_el if isinstance(child.tag, str)), None)
    if inner is None:
        raise SoapFault("Invalid xml data: xmlRequest holds no element.", 187, 500)
    return local_copy(inner)


def _company(
    sandbox: Sandbox, envelope: etree._Element, version: str, token: AccessToken, root: etree._Element
) -> Office | None:
    values = _header_values(envelope, version)
    code = values.get("CompanyCode") or values.get("CompanyId")
    if not code:
        if not processxml.needs_office(root):
            return None
        raise SoapFault("Toegang geweigerd. Company ontbreekt in request header.", 101, 500)
    office = sandbox.state.office_for(code)
    if office is None or office.organisation != token.organisation:
        raise SoapFault(f"Access denied. No access to company {code}.", 102, 403)
    return office


# -- responses ----------------------------------------------------------------------------------


def _envelope(version: str, operation: str, result: etree._Element) -> Response:
    envelope = etree.Element(f"{{{version}}}Envelope", nsmap={"soap": version, "xsi": XSI, "xsd": XSD})
    body = etree.SubElement(envelope, f"{{{version}}}Body")
    # A default namespace on the wrapper would swallow the un-namespaced literal result of
    # ProcessXmlDocument (lxml emits no xmlns=""), so that one gets a prefix instead.
    nsmap = {None: TNS} if operation == "ProcessXmlString" else {"tw": TNS}
    wrapper = etree.SubElement(body, f"{{{TNS}}}{operation}Response", nsmap=nsmap)
    result_el = etree.SubElement(wrapper, f"{{{TNS}}}{operation}Result")
    if operation == "ProcessXmlString":
        result_el.text = to_string(result)
    else:
        result_el.append(result)
    return Response(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"), media_type=CONTENT_TYPES[version])


def _fault_response(version: str, fault: SoapFault, operation: str, actor: str) -> Response:
    envelope = etree.Element(f"{{{version}}}Envelope", nsmap={"soap": version, "xsi": XSI, "xsd": XSD})
    body = etree.SubElement(envelope, f"{{{version}}}Body")
    fault_el = etree.SubElement(body, f"{{{version}}}Fault")
    if version == SOAP11:
        etree.SubElement(fault_el, "faultcode").text = "soap:Client" if fault.client_side else "soap:Server"
        etree.SubElement(fault_el, "faultstring").text = fault.message
        etree.SubElement(fault_el, "faultactor").text = actor
        detail = etree.SubElement(fault_el, "detail")
    else:
        code = etree.SubElement(fault_el, f"{{{version}}}Code")
        etree.SubElement(code, f"{{{version}}}Value").text = "soap:Sender" if fault.client_side else "soap:Receiver"
        reason = etree.SubElement(fault_el, f"{{{version}}}Reason")
        text = etree.SubElement(reason, f"{{{version}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = fault.message
        detail = etree.SubElement(fault_el, f"{{{version}}}Detail")
    etree.SubElement(detail, "message").text = fault.message
    etree.SubElement(detail, "code").text = str(fault.code)
    etree.SubElement(detail, "source").text = operation
    return Response(
        etree.tostring(envelope, xml_declaration=True, encoding="utf-8"),
        status_code=fault.http_status,
        media_type=CONTENT_TYPES[version],
    )


def _too_many(retry_after: int, reason: str, limit: int, remaining: int) -> Response:
    return Response(
        f"Too Many Requests: {reason}",
        status_code=429,
        media_type="text/plain; charset=utf-8",
        headers={
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
        },
    )


async def _injected(rule: FaultRule, version: str, operation: str, actor: str) -> Response:
    if rule.kind == "expired_token":
        return _fault_response(version, SoapFault("Access denied. Token invalid.", 354, 401), operation, actor)
    if rule.kind == "rate_limit":
        return _too_many(rule.retry_after, f"injected ({rule.id})", 0, 0)
    if rule.kind == "timeout":
        await asyncio.sleep(rule.delay_seconds)
        return Response("Gateway Timeout", status_code=504, media_type="text/plain; charset=utf-8")
    fault = SoapFault(f"Unexpected exception (injected {rule.id}).", 100, rule.status, client_side=False)
    return _fault_response(version, fault, operation, actor)
