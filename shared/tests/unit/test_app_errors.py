"""Application errors become problem+json at the edge: each kind answers with its one status and
the body a route's ``Problem`` with the same arguments would have given."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from koppel_shared import errors
from koppel_shared.settings import KoppelSettings
from koppel_shared.web.app import create_app
from koppel_shared.web.errors import STATUS_BY_KIND, Problem

KIND_STATUS = [
    (errors.Malformed, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.TooLong, 414),
    (errors.Invalid, 422),
    (errors.UpstreamFailed, 502),
    (errors.Unavailable, 503),
]

raised: dict[str, Exception] = {}
router = APIRouter()


@router.get("/raise/{name}")
async def raise_it(name: str) -> None:
    raise raised[name]


async def _answer(exc: Exception) -> httpx.Response:
    raised["it"] = exc
    app = create_app(title="t", settings=KoppelSettings(), routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/raise/it", headers={"X-Request-ID": "req-1"})


def test_every_kind_has_a_status_and_the_table_covers_every_kind() -> None:
    kinds = {k for k, _ in KIND_STATUS}
    assert set(STATUS_BY_KIND) == kinds
    assert {cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.AppError)} == (
        kinds | {errors.AppError}
    )


@pytest.mark.parametrize(("kind", "status"), KIND_STATUS, ids=[k.__name__ for k, _ in KIND_STATUS])
async def test_each_kind_answers_the_same_body_as_the_problem_it_replaces(
    kind: type[errors.AppError], status: int
) -> None:
    new = await _answer(kind("thing_refused", "the thing was refused", thing_id="t-1"))
    old = await _answer(Problem(status, "thing_refused", "the thing was refused", thing_id="t-1"))
    assert new.status_code == status
    assert new.headers["content-type"] == "application/problem+json"
    assert new.json() == old.json()
    assert new.json()["code"] == "thing_refused"
    assert new.json()["thing_id"] == "t-1"
    assert new.json()["correlation_id"] == "req-1"
    assert new.headers.get("WWW-Authenticate") == old.headers.get("WWW-Authenticate")


async def test_a_title_is_kept_and_otherwise_comes_from_the_code() -> None:
    titled = await _answer(errors.Invalid("twikey_err_x", "no", title="Refused by Twikey"))
    plain = await _answer(errors.Conflict("invoice_withdrawn", "gone"))
    assert titled.json()["title"] == "Refused by Twikey"
    assert plain.json()["title"] == "Invoice withdrawn"


async def test_field_errors_answer_like_schema_validation() -> None:
    fields = [{"field": "amount_cents", "rule": "positive", "message": "must be above 0"}]
    response = await _answer(errors.Invalid.fields(fields))
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["title"] == "Invalid request"
    assert body["detail"] == "amount_cents: must be above 0"
    assert body["errors"] == fields


async def test_a_subclass_answers_as_its_kind() -> None:
    class MandateGone(errors.NotFound):
        pass

    response = await _answer(MandateGone("mandate_not_found", "no mandate m-1"))
    assert response.status_code == 404
    assert response.json()["code"] == "mandate_not_found"


async def test_a_bare_app_error_is_our_bug_and_a_500() -> None:
    response = await _answer(errors.AppError("unclassified", "no kind"))
    assert response.status_code == 500
    assert response.json()["code"] == "unclassified"
