"""Operator REST API under ``/v1/twikey`` (scope ``operator``; the tenant comes from the token):
the Twikey connection, its test, feed positions and reset, received webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from koppel_shared.deps import Operator, RuntimeDep, UowDep
from sync_svc.service_layer import connections, feeds, templates, webhooks
from sync_svc.service_layer.resources import resources_of
from sync_svc.settings import Settings

router = APIRouter(prefix="/v1/twikey", tags=["twikey"])


class ConnectionIn(BaseModel):
    api_key: str | None = Field(
        None, min_length=8, max_length=200, description="Required the first time; kept if omitted"
    )
    private_key: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{16,256}$", description="Hex private key for OTP")
    clear_private_key: bool = False
    base_url: str | None = Field(None, pattern=r"^https?://", max_length=500)
    core_template_id: str | None = Field(None, max_length=50)
    b2b_template_id: str | None = Field(None, max_length=50)
    notify_before_collection: bool = False

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "api_key": "5845FD6A8B0C4E1F9A2B3C4D5E6F7A8B9C0D1E2F",
                    "base_url": "https://api.beta.twikey.com/creditor",
                    "core_template_id": "1001",
                    "b2b_template_id": "1002",
                    "notify_before_collection": True,
                }
            ]
        }
    }


class FeedResetIn(BaseModel):
    feed: Literal["mandate", "transaction", "paylink", "all"]
    since: datetime | None = Field(None, description="Replay what happened from this moment; omitted = from the start")

    model_config = {"json_schema_extra": {"examples": [{"feed": "mandate", "since": "2026-01-05T00:00:00Z"}]}}


def _settings(runtime: Any) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


@router.put("/connection")
async def put_connection(body: ConnectionIn, principal: Operator, runtime: RuntimeDep, uow: UowDep) -> dict[str, Any]:
    """Set the tenant's Twikey connection. The API key is stored encrypted and never returned."""
    settings = _settings(runtime)
    await connections.save(
        uow,
        runtime.secrets,
        principal.tenant_id,
        api_key=body.api_key,
        private_key=body.private_key,
        clear_private_key=body.clear_private_key,
        base_url=body.base_url or settings.twikey_default_base_url,
        core_template_id=body.core_template_id,
        b2b_template_id=body.b2b_template_id,
        notify_before_collection=body.notify_before_collection,
    )
    await uow.commit()
    resources_of(runtime).keys.forget(principal.tenant_id)
    return await connections.describe(uow, principal.tenant_id, settings.public_base_url)


@router.get("/connection")
async def get_connection(principal: Operator, runtime: RuntimeDep, uow: UowDep) -> dict[str, Any]:
    return await connections.describe(uow, principal.tenant_id, _settings(runtime).public_base_url)


@router.post("/connection/test")
async def test_connection(principal: Operator, runtime: RuntimeDep, uow: UowDep) -> dict[str, Any]:
    """Log in at Twikey with the stored key; ``ok`` false carries Twikey's code and message. After
    a login, ``templates`` lists the configured templates Twikey has for the key and
    ``template_problems`` the ones it refuses (``service_layer/templates.py``)."""
    gateway = resources_of(runtime).gateway
    outcome = await connections.test(uow, runtime.secrets, gateway, principal.tenant_id)
    await uow.commit()
    found: dict[str, list[dict[str, Any]]] = {"templates": [], "template_problems": []}
    if outcome["ok"]:
        connection = await connections.require(uow, runtime.secrets, principal.tenant_id)
        found = await templates.check(gateway.client(connection.credentials), connection)
    outcome.update(found)
    settings = _settings(runtime)
    return {**outcome, "webhook_url": connections.webhook_url(settings.public_base_url, principal.tenant_id)}


@router.get("/feeds")
async def get_feeds(principal: Operator, uow: UowDep) -> dict[str, Any]:
    """Cursor, last drain and last error per feed, and the latest messages that could not be read."""
    return await feeds.status(uow, principal.tenant_id)


@router.post("/feeds/reset")
async def reset_feed(body: FeedResetIn, principal: Operator, uow: UowDep) -> dict[str, Any]:
    """Move the feed position back (to ``since`` or the start) and drain again. Replayed messages
    carry the same event ids as the first time, so nothing happens twice downstream."""
    moved = await feeds.reset(uow, principal.tenant_id, body.feed, body.since)
    await uow.commit()
    return {"reset": moved, "since": body.since}


@router.get("/webhooks")
async def get_webhooks(principal: Operator, uow: UowDep, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    return {"items": await webhooks.recent(uow, principal.tenant_id, limit)}
