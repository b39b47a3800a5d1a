"""The first-run checklist on the overview: what a tenant still lacks before Koppel can collect
and book for it, each item linking to the form that settles it. Read from the services' own
answers (nothing is kept in the console); a service that does not answer leaves its items open
with the reason, so the list never claims more than it knows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from koppel_console.services import Answer, ServiceApi


@dataclass
class Item:
    key: str
    label: str
    done: bool
    href: str
    detail: str = ""


@dataclass
class Checklist:
    items: list[Item]

    @property
    def complete(self) -> bool:
        return all(item.done for item in self.items)

    @property
    def missing(self) -> list[Item]:
        return [item for item in self.items if not item.done]


async def gather(api: ServiceApi, token: str) -> Checklist:
    twikey, twinfield, policy, endpoints, tokens = await asyncio.gather(
        api.call("sync", "GET", "/v1/twikey/connection", token),
        api.call("bookkeeping", "GET", "/v1/twinfield/connection", token),
        api.call("collection", "GET", "/v1/collection-policy", token),
        api.call("notify", "GET", "/v1/webhook-endpoints", token),
        api.call("sync", "GET", "/v1/tokens", token),
    )
    return build(twikey, twinfield, policy, endpoints, tokens)


def _body(answer: Answer) -> dict[str, Any]:
    return answer.body if answer.ok and isinstance(answer.body, dict) else {}


def _why(answer: Answer) -> str:
    return "" if answer.ok or answer.status == 404 else answer.error or ""


def build(twikey: Answer, twinfield: Answer, policy: Answer, endpoints: Answer, tokens: Answer) -> Checklist:
    tw = _body(twikey)
    last_test = tw.get("last_test") or {}
    tf = _body(twinfield)
    items = [
        Item("twikey_key", "Enter the Twikey API key", bool(tw.get("api_key_set")), "/console/settings/twikey",
             _why(twikey)),
        Item(
            "twikey_test", "Test the Twikey key", bool(last_test.get("ok")), "/console/settings/twikey",
            f"Twikey said: {last_test.get('error')}" if last_test and not last_test.get("ok") else "",
        ),
        Item("twikey_template", "Choose the CORE mandate template", bool(tw.get("core_template_id")),
             "/console/settings/twikey"),
        Item(
            "twinfield_connected",
            "Reconnect Twinfield" if tf.get("status") == "consent_lost" else "Connect Twinfield",
            tf.get("status") == "connected", "/console/settings/twinfield",
            # the reason matters when consent was lost; before a first connect it is the API's hint
            (tf.get("reason") or "") if tf.get("status") == "consent_lost" else _why(twinfield),
        ),
        Item("twinfield_office", "Choose the Twinfield office and accounts", bool(tf.get("office")),
             "/console/settings/twinfield"),
        Item("policy", "Save a collection policy", (_body(policy).get("version") or 0) > 0, "/console/settings/policy",
             _why(policy)),
        Item("erp_endpoint", "Add an ERP endpoint", any(e.get("enabled", True) for e in endpoints.items),
             "/console/settings/endpoints", _why(endpoints)),
        Item("erp_token", "Issue an ERP token", _has_erp_token(tokens), "/console/settings/tokens",
             "sync-svc cannot list tokens yet" if tokens.status in (404, 405) else _why(tokens)),
    ]  # fmt: skip
    return Checklist(items)


def _has_erp_token(tokens: Answer, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    for token in tokens.items:
        if "erp" not in (token.get("scopes") or []) or token.get("revoked_at"):
            continue
        expires = token.get("expires_at")
        try:
            if expires and datetime.fromisoformat(str(expires).replace("Z", "+00:00")) <= now:
                continue
        except ValueError:
            continue
        return True
    return False
