"""``GET /webhooks/twikey/{tenant_id}?<query>``: Twikey's signed webhook (reference §9).

Unauthenticated by design: the signature over the raw query string is the authentication.
Registered as a bare ASGI endpoint rather than a FastAPI (or even a Starlette request/response)
route: Twikey sends no body and we read the raw query string and one header ourselves, so a
``Request``, a ``Response`` and FastAPI's parameter parsing and dependency resolution would only
multiply the cost of the hottest endpoint. It still sits behind the app's middleware (request id,
metrics, input sanity), and a ``Problem`` raised here goes through the app's problem+json
handlers like any other.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from koppel_shared.web.errors import Problem
from sync_svc.service_layer import webhooks
from sync_svc.service_layer.resources import Resources

router = APIRouter(tags=["webhooks"])

_NO_CONTENT = {"type": "http.response.start", "status": 204, "headers": []}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}


class TwikeyWebhook:
    """Verify ``X-Signature``, store the webhook (committed) and answer 204; the worker drains."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            tenant = uuid.UUID(scope["path_params"]["tenant_id"])
        except ValueError:
            raise Problem(404, "unknown_tenant", "not a tenant id") from None
        state = scope["app"].state
        resources: Resources = state.dependencies
        raw_query = scope.get("query_string", b"").decode("latin-1")
        await webhooks.receive(resources, state.runtime.secrets, tenant, raw_query, _signature(scope))
        # Fresh dicts: the middleware adds its headers to the message it is given.
        await send({**_NO_CONTENT, "headers": []})
        await send(dict(_EMPTY_BODY))


def _signature(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:  # ASGI header names are lower-case bytes
        if name == b"x-signature":
            return str(value.decode("latin-1"))
    return None


router.add_route(
    "/webhooks/twikey/{tenant_id}",
    TwikeyWebhook(),  # type: ignore[arg-type]  # an ASGI app, which Starlette routes as such
    methods=["GET"],
    include_in_schema=False,
)
