"""The one synchronous call to sync-svc: invite a mandate at Twikey and get the sign URL.

``SyncClient`` is what the use case depends on; ``HttpSyncClient`` speaks sync-svc's internal
API (``POST /internal/v1/mandates/invite`` with this service's ``internal`` service token, naming
the tenant in ``X-Koppel-Tenant``).

Asking sync-svc again after a timeout, a connection error, 429 or 502/504 is safe although the
invite is a write at Twikey: the request names the mandate number, and sync-svc never sends a
second invite for a number it has sent one for — it looks the mandate up first and answers with
what Twikey has (or 503 while the first attempt's outcome is not known yet). So a second ask is a
look-up, never a second mandate. sync-svc's own 503 ``twikey_unavailable`` is not asked again
here (it decided already), and neither is a 422 refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from koppel_shared.auth import TENANT_HEADER
from koppel_shared.debtor import InviteDebtor
from koppel_shared.http import RetryableResponse, make_client, send_with_retry
from koppel_shared.logging import get_logger

log = get_logger(__name__)

INVITE_PATH = "/internal/v1/mandates/invite"


@dataclass(frozen=True)
class InviteRequest:
    reference: str
    mandate_number: str
    scheme: str
    delivery: str
    customer: InviteDebtor


@dataclass(frozen=True)
class InviteResult:
    mandate_number: str
    sign_url: str | None


class InviteRefused(Exception):
    """Twikey (through sync-svc) refused the invite: ``code`` is ``twikey_<ApiErrorCode>``."""

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


class SyncUnavailable(Exception):
    """sync-svc or Twikey could not be reached; the invite may be retried with the same reference."""


class SyncClient(Protocol):
    async def invite(self, tenant_id: str, request: InviteRequest) -> InviteResult: ...


class HttpSyncClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        self._client = make_client(base_url.rstrip("/"), timeout=timeout)
        self._token = token
        self._attempts = attempts

    async def close(self) -> None:
        await self._client.aclose()

    async def invite(self, tenant_id: str, request: InviteRequest) -> InviteResult:
        body = {
            "reference": request.reference,
            "mandate_number": request.mandate_number,
            "scheme": request.scheme,
            "delivery": request.delivery,
            "customer": request.customer.model_dump(),
        }
        headers = {"Authorization": f"Bearer {self._token}", TENANT_HEADER: str(tenant_id)}
        try:
            response = await send_with_retry(
                lambda: self._client.post(INVITE_PATH, json=body, headers=headers),
                attempts=self._attempts,
                initial=0.2,
                max_wait=5.0,
                should_retry=_worth_retrying,
            )
        except (RetryableResponse, httpx.TransportError, httpx.TimeoutException) as exc:
            log.warning("sync.invite_unreachable", reference=request.reference, error=str(exc))
            raise SyncUnavailable(f"sync-svc did not answer: {exc}") from exc

        if response.status_code == 200:
            data = response.json()
            # sign_url is null when sync-svc found the mandate by a look-up (the answer was lost).
            return InviteResult(mandate_number=str(data["mandate_number"]), sign_url=data.get("sign_url"))
        problem = _problem(response)
        code = str(problem.get("code") or f"http_{response.status_code}")
        detail = str(problem.get("detail") or problem.get("message") or response.text[:300])
        if response.status_code in (400, 409, 422):
            raise InviteRefused(code, detail, _field_of(problem))
        log.warning("sync.invite_failed", reference=request.reference, status=response.status_code, code=code)
        raise SyncUnavailable(f"sync-svc answered {response.status_code} {code}: {detail}")


def _worth_retrying(response: httpx.Response) -> bool:
    if response.status_code in (429, 502, 504):
        return True
    return response.status_code == 503 and _problem(response).get("code") != "twikey_unavailable"


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _field_of(problem: dict[str, Any]) -> str | None:
    for key in ("field", "extra"):
        if isinstance(problem.get(key), str) and problem[key]:
            return str(problem[key])
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("field"):
        return str(errors[0]["field"])
    return None
