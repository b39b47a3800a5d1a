"""The Twikey client's retry policies: reads are retried, writes never after they may have
reached Twikey (a timeout or a 5xx after sending is an unknown outcome, for a look-up to settle)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sync_svc.adapters.twikey_client import (
    Credentials,
    RetryPolicy,
    SessionCache,
    TwikeyClient,
    TwikeyOutcomeUnknown,
    TwikeyUnavailable,
)

BASE = "https://twikey.test/creditor"
Reply = Callable[[httpx.Request], httpx.Response]


class Twikey:
    """A scripted Twikey: login always works; each call to ``path`` takes the next reply."""

    def __init__(self, path: str, replies: list[Reply]) -> None:
        self.path = path
        self.replies = replies
        self.sent = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/creditor":
            return httpx.Response(200, headers={"Authorization": "session-1"}, json={"Authorization": "session-1"})
        assert request.url.path == self.path
        self.sent += 1
        return self.replies[min(self.sent, len(self.replies)) - 1](request)


def client_for(twikey: Twikey) -> TwikeyClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(twikey.handle))
    return TwikeyClient(
        http, Credentials("t-1", BASE, "key"), SessionCache(), RetryPolicy(attempts=4, initial=0.01, max_wait=0.05)
    )


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def refused_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def status(code: int, **headers: str) -> Reply:
    return lambda request: httpx.Response(code, headers=headers, text="fault")


def invited(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"url": "https://twikey.to/x", "key": "x", "mndtId": "KOP1"})


def detail(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"X-STATE": "PREPARED"}, json={"Mndt": {"MndtId": "KOP1"}})


async def test_a_write_that_timed_out_is_never_sent_again() -> None:
    twikey = Twikey("/creditor/invite", [timeout, invited])
    with pytest.raises(TwikeyOutcomeUnknown) as caught:
        await client_for(twikey).invite({"ct": "1"})
    assert twikey.sent == 1
    assert caught.value.answered is False


@pytest.mark.parametrize(("code", "answered"), [(500, True), (503, True), (502, False), (504, False)])
async def test_a_write_answered_with_a_5xx_is_never_sent_again(code: int, answered: bool) -> None:
    twikey = Twikey("/creditor/invite", [status(code), invited])
    with pytest.raises(TwikeyOutcomeUnknown) as caught:
        await client_for(twikey).invite({"ct": "1"})
    assert twikey.sent == 1
    assert caught.value.answered is answered


async def test_a_write_that_never_connected_is_sent_again() -> None:
    twikey = Twikey("/creditor/invite", [refused_connection, refused_connection, invited])
    assert (await client_for(twikey).invite({"ct": "1"}))["mndtId"] == "KOP1"
    assert twikey.sent == 3


async def test_a_write_that_never_connects_ends_unavailable_not_unknown() -> None:
    twikey = Twikey("/creditor/invite", [refused_connection])
    with pytest.raises(TwikeyUnavailable) as caught:
        await client_for(twikey).invite({"ct": "1"})
    assert not isinstance(caught.value, TwikeyOutcomeUnknown)
    assert twikey.sent == 4


async def test_a_write_refused_with_429_is_sent_again_after_the_wait() -> None:
    twikey = Twikey("/creditor/invite", [status(429, **{"X-Rate-Limit-Retry-After-Seconds": "0"}), invited])
    assert (await client_for(twikey).invite({"ct": "1"}))["mndtId"] == "KOP1"
    assert twikey.sent == 2


@pytest.mark.parametrize("fault", [timeout, status(500), status(503), status(429)])
async def test_reads_are_retried(fault: Reply) -> None:
    twikey = Twikey("/creditor/mandate/detail", [fault, fault, detail])
    found = await client_for(twikey).mandate_detail("KOP1")
    assert found is not None and found.state == "PREPARED"
    assert twikey.sent == 3


async def test_a_mandate_twikey_does_not_know_is_none() -> None:
    unknown = Twikey(
        "/creditor/mandate/detail",
        [lambda r: httpx.Response(400, headers={"ApiErrorCode": "err_no_contract"}, json={"code": "err_no_contract"})],
    )
    assert await client_for(unknown).mandate_detail("KOP404") is None


@pytest.mark.parametrize(
    "refused",
    [
        status(401),  # as Twikey describes authentication errors: no ApiError headers
        status(401, ApiError="err_no_login", ApiErrorCode="err_no_login"),
        status(400, ApiError="err_no_login"),  # the header Go's SDK looks for
    ],
    ids=["401-bare", "401-with-headers", "400-err_no_login"],
)
async def test_a_refused_session_is_renewed_once_with_or_without_the_api_error_header(refused: Reply) -> None:
    twikey = Twikey("/creditor/mandate/detail", [refused, detail])
    found = await client_for(twikey).mandate_detail("KOP1")
    assert found is not None and found.state == "PREPARED"
    assert twikey.sent == 2
