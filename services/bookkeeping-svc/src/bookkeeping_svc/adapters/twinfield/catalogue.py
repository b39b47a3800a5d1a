"""What an office offers to choose from: the offices a token reaches and an office's general
ledger accounts, as ProcessXml ``<list>`` requests (1 credit each) and their answers.

- ``<list><type>offices</type></list>``, sent without a company (reference §2.3) →
  ``<offices result="1"><office name shortname>CODE</office>…``.
- ``<list><type>dimensions</type><office/><dimtype>BAS|PNL</dimtype></list>`` → ``<dimensions
  office type result="1"><dimension name shortname>CODE</dimension>…``: the request
  CodeMill-Solutions/twinfield-mcp (src/tools/dimensions.ts) sends for general ledger accounts,
  in the shape of the published DEB list (php-twinfield/twinfield tests/IntegrationTests/resources/
  customerListResponse.xml). Twinfield closes such a list with an entry whose code is the type
  itself and whose name is empty; it is not an account and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bookkeeping_svc.adapters.twinfield import documents

# Twinfield's dimension types of general ledger accounts, and what Koppel calls them.
LEDGER_TYPES = {"BAS": "balance", "PNL": "profit_and_loss"}


@dataclass(frozen=True)
class Entry:
    code: str
    name: str


class ListRefused(Exception):
    """Twinfield answered ``result="0"`` (e.g. an office the token cannot use)."""


def list_offices() -> str:
    return "<list><type>offices</type></list>"


def list_dimensions(office: str, dimtype: str) -> str:
    root = etree.Element("list")
    etree.SubElement(root, "type").text = "dimensions"
    etree.SubElement(root, "office").text = office
    etree.SubElement(root, "dimtype").text = dimtype
    return etree.tostring(root, encoding="unicode")


def _refused(root: etree._Element) -> ListRefused:
    return ListRefused(documents.summary(documents.messages(root)) or "Twinfield refused the list")


def parse_offices(root: etree._Element) -> list[Entry]:
    if root.tag != "offices" or root.get("result", "1") != "1":
        raise _refused(root)
    return [Entry((el.text or "").strip(), el.get("name") or "") for el in root.findall("office") if el.text]


def parse_dimensions(root: etree._Element, dimtype: str) -> list[Entry]:
    if root.tag != "dimensions" or not documents.ok(root):
        raise _refused(root)
    entries = []
    for el in root.findall("dimension"):
        code = (el.text or "").strip()
        if not code or (code == dimtype and not el.get("name")):
            continue  # the type marker Twinfield puts at the end
        entries.append(Entry(code, el.get("name") or ""))
    return entries
