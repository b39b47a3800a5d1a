"""Twikey errors read the way the description gives them: a 400 with the code in ``ApiErrorCode``
(or only ``ApiError``) and a JSON body, or — in the form the login's description still names —
a 200 whose only sign of failure is those headers."""

from __future__ import annotations

import httpx
import pytest

from sync_svc.adapters.twikey_client import Credentials, RetryPolicy, SessionCache, TwikeyClient, TwikeyError

BASE = "https://twikey.test/creditor"
SESSION = {"Authorization": "session-1"}
LANG = {"code": "err_invalid_lang", "message": "x", "extra": "l"}


def client_answering(login: httpx.Response, invite: httpx.Response | None = None) -> TwikeyClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/creditor":
            return login
        assert invite is not None
        return invite

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return TwikeyClient(http, Credentials("t-1", BASE, "key"), SessionCache(), RetryPolicy(attempts=1, initial=0.01))


@pytest.mark.parametrize(
    "refused",
    [
        httpx.Response(400, headers={"ApiErrorCode": "err_no_login", "ApiError": "err_no_login"},
                       json={"code": "err_no_login", "message": "Invalid API key"}),
        # "For security reasons, the http status is always 200 ... ApiError and ApiErrorCode"
        httpx.Response(200, headers={"ApiErrorCode": "err_no_login"}, json={"message": "Invalid API key"}),
    ],
)  # fmt: skip
async def test_a_refused_login_is_a_twikey_error_with_its_code(refused: httpx.Response) -> None:
    with pytest.raises(TwikeyError) as raised:
        await client_answering(refused).login()
    assert raised.value.code == "err_no_login" and raised.value.message == "Invalid API key"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, headers={"ApiErrorCode": "err_invalid_lang"}, json=LANG),
        httpx.Response(400, headers={"ApiError": "err_invalid_lang"}, text="Invalid language"),  # Go/Java read ApiError
        httpx.Response(200, headers={"ApiErrorCode": "err_invalid_lang"}, json=LANG),
    ],
)  # fmt: skip
async def test_a_refused_call_is_a_twikey_error_with_its_code_in_any_documented_form(answer: httpx.Response) -> None:
    login = httpx.Response(200, headers=SESSION, json=SESSION)
    with pytest.raises(TwikeyError) as raised:
        await client_answering(login, answer).invite({"ct": "1", "l": "xx"})
    assert raised.value.code == "err_invalid_lang"
