"""Helpers for suites that drive Koppel against this sandbox."""

from __future__ import annotations

from typing import Any


def koppel_connection(creditor: dict[str, Any], sandbox_base: str) -> dict[str, str]:
    """The body of sync-svc's ``PUT /v1/twikey/connection`` for a creditor made with
    ``POST /_sandbox/creditors`` on the sandbox at ``sandbox_base``."""
    return {
        "api_key": creditor["api_key"],
        "base_url": f"{sandbox_base}/creditor",
        "core_template_id": str(creditor["templates"]["CORE"]),
        "b2b_template_id": str(creditor["templates"]["B2B"]),
    }
