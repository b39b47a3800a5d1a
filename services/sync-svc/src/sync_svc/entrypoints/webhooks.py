"""``GET /webhooks/twikey/{tenant_id}?<query>``: Twikey's signed webhook (reference §9).

Unauthenticated by design: the signature over the raw query string is the authentication.
Registered as a plain Starlette route rather than a FastAPI one: Twikey sends no body and we read
the raw query string ourselves, so FastAPI's parameter parsing and dependency resolution (which
runs a sync dependency in a worker thread) would only triple the cost of the hottest endpoint.
Problems raised here still go through the app's problem+json handlers.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from koppel_shared.web.errors import Problem
from sync_svc.service_layer import webhooks
from sync_svc.service_layer.resources import resources_of

router = APIRouter(tags=["webhooks"])
_NO_CONTENT = 204


async def twikey_webhook(request: Request) -> Response:
    """Verify ``X-Signature``, store the webhook (committed) and answer 204; the worker drains."""
    try:
        tenant = uuid.UUID(request.path_params["tenant_id"])
    except ValueError:
        raise Problem(404, "unknown_tenant", "not a tenant id") from None
    runtime = request.app.state.runtime
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    await webhooks.receive(
        resources_of(runtime), runtime.secrets, tenant, raw_query, request.headers.get("x-signature")
    )
    return Response(status_code=_NO_CONTENT)


router.add_route("/webhooks/twikey/{tenant_id}", twikey_webhook, methods=["GET"], include_in_schema=False)
