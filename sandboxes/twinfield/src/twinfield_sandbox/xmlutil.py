"""lxml helpers shared by the ProcessXml handlers: building elements, reading child text, and
Twinfield's error convention (`msgtype`/`msg` on the offending node, `result="0"` rolled up to
every ancestor, several messages joined with `//`).
"""

from __future__ import annotations

from lxml import etree

# Untrusted input: no entity expansion, no network, no DTD loading.
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
# Forces UTF-8 for the inner document of ProcessXmlString: it arrives as an already-decoded
# string, so a stale `encoding="utf-16"` declaration inside it must not be believed.
STRING_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, encoding="utf-8"
)


def sub(parent: etree._Element, tag: str, text: object | None = None, **attrs: object) -> etree._Element:
    element = etree.SubElement(parent, tag)
    for key, value in attrs.items():
        if value is not None:
            element.set(key, str(value))
    if text is not None:
        element.text = str(text)
    return element


def text_of(element: etree._Element | None, path: str, default: str = "") -> str:
    if element is None:
        return default
    child = element.find(path)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def has_child(element: etree._Element, path: str) -> bool:
    return element.find(path) is not None


def mark(element: etree._Element, msg: str, msgtype: str = "error") -> None:
    """Put a message on `element`; the result attributes are settled later by `settle`."""
    existing = element.get("msg")
    element.set("msg", f"{existing}//{msg}" if existing else msg)
    previous = element.get("msgtype")
    # An element with both an error and a warning reports the error.
    if previous != "error":
        element.set("msgtype", msgtype)


def settle(root: etree._Element, warnings_fail: bool = True) -> bool:
    """Set `result="0"` on every element carrying an error (and a warning when warnings count)
    and on all its ancestors up to and including `root`; `result="1"` on `root` otherwise.
    Returns True when the tree holds no failure."""
    failed = False
    for element in root.iter():
        msgtype = element.get("msgtype")
        if msgtype == "error" or (msgtype == "warning" and warnings_fail):
            failed = True
            node: etree._Element | None = element
            while node is not None:
                node.set("result", "0")
                if node is root:
                    break
                node = node.getparent()
    if not failed:
        root.set("result", "1")
    return not failed


def local_copy(element: etree._Element) -> etree._Element:
    """A deep copy with namespaces stripped; ProcessXmlDocument bodies often inherit the SOAP
    body's default namespace, which Twinfield ignores."""
    copy = etree.fromstring(etree.tostring(element), SAFE_PARSER)
    for node in copy.iter():
        if isinstance(node.tag, str):
            node.tag = etree.QName(node).localname
    etree.cleanup_namespaces(copy)
    return copy


def to_string(element: etree._Element) -> str:
    return etree.tostring(element, encoding="unicode")
