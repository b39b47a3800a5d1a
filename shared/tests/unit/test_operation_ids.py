"""Operation ids: readable, and named after the public prefix a route lives under, so that the
same handler name in two services does not collide in the merged public document."""

from __future__ import annotations

from fastapi import APIRouter

from koppel_shared.web.app import create_app


def _ids(router: APIRouter) -> dict[tuple[str, str], str]:
    document = create_app(title="ids", settings=None, routers=[router]).openapi()
    paths = document["paths"].items()
    return {(method, path): op["operationId"] for path, item in paths for method, op in item.items()}


def test_the_prefix_comes_first_and_the_words_it_already_says_are_left_out() -> None:
    router = APIRouter()

    @router.post("/v1/pay-links")
    async def create_pay_link() -> None: ...

    @router.get("/v1/deliveries/{delivery_id}")
    async def get_delivery(delivery_id: str) -> None: ...

    @router.get("/v1/twikey/connection")
    async def get_connection() -> None: ...

    @router.get("/v1/invoices")
    async def invoices() -> None: ...

    ids = _ids(router)
    assert ids[("post", "/v1/pay-links")] == "pay_links_create"
    assert ids[("get", "/v1/deliveries/{delivery_id}")] == "deliveries_get"
    assert ids[("get", "/v1/twikey/connection")] == "twikey_get_connection"
    # Nothing left after the prefix's words: the handler's name stays whole.
    assert ids[("get", "/v1/invoices")] == "invoices_invoices"


def test_routes_outside_v1_keep_fastapis_own_ids() -> None:
    router = APIRouter()

    @router.post("/internal/v1/mandates/invite")
    async def invite() -> None: ...

    assert _ids(router)[("post", "/internal/v1/mandates/invite")] == "invite_internal_v1_mandates_invite_post"
