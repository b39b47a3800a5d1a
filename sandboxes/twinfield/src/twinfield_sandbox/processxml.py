"""Routing of one ProcessXml request document to its handler, by root element (and `<type>` for
`read`/`list`), plus the operation name used for credits and fault rules."""

from __future__ import annotations

import copy

from lxml import etree

from . import browse, dimensions, matching, statements, transactions
from .context import Context
from .xmlutil import mark, settle, text_of


def operation_of(root: etree._Element) -> str:
    tag = root.tag
    if tag in ("transactions", "transaction"):
        return "transactions"
    if tag in ("dimensions", "dimension"):
        return "dimensions"
    return tag


def needs_office(root: etree._Element) -> bool:
    """Only `<list><type>offices</type></list>` may be sent without a company (reference §2.3)."""
    return not (root.tag == "list" and text_of(root, "type") == "offices")


def process(ctx: Context, root: etree._Element) -> etree._Element:
    tag = root.tag
    if tag in ("transactions", "transaction"):
        return transactions.process(ctx, root)
    if tag == "match":
        return matching.process(ctx, root)
    if tag == "statement":
        return statements.process(ctx, root)
    if tag == "columns":
        return browse.columns(ctx, root)
    if tag in ("dimensions", "dimension"):
        return dimensions.process(ctx, root)
    kind = text_of(root, "type")
    if tag == "read":
        if kind == "transaction":
            return transactions.read(ctx, root)
        if kind == "dimensions":
            return dimensions.read(ctx, root)
        if kind == "browse":
            return browse.definition(ctx, root)
    if tag == "list":
        if kind == "offices":
            return dimensions.list_offices(ctx)
        if kind == "dimensions":
            return dimensions.list_dimensions(ctx, root)
    echo = copy.deepcopy(root)
    if tag in ("read", "list"):
        target = echo.find("type")
        mark(target if target is not None else echo, f"Type '{kind}' wordt door de sandbox niet ondersteund.")
    else:
        mark(echo, f"Onbekend bericht <{tag}>.")
    settle(echo)
    return echo
