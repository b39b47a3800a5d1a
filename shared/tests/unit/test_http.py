"""Outbound retries (on httpx's mock transport): 5xx and 429 are retried, Retry-After honoured,
other 4xx returned at once."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest

from koppel_shared.http import RetryableResponse, send_with_retry


def server(statuses: list[tuple[int, dict[str, str]]]) -> tuple[httpx.AsyncClient, list[float]]:
    calls: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        status, headers = statuses[min(len(calls) - 1, len(statuses) - 1)]
        return httpx.Response(status, headers=headers, json={"n": len(calls)})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="http://x"), calls


async def test_server_errors_are_retried_until_success():
    client, calls = server([(503, {}), (500, {}), (200, {})])
    response = await send_with_retry(lambda: client.get("/"), initial=0.01)
    assert response.status_code == 200 and len(calls) == 3


async def test_retry_after_of_a_429_is_honoured():
    client, calls = server([(429, {"X-Rate-Limit-Retry-After-Seconds": "0.3"}), (200, {})])
    await send_with_retry(lambda: client.get("/"), initial=0.01)
    assert calls[1] - calls[0] >= 0.29


async def test_client_errors_are_not_retried():
    client, calls = server([(422, {})])
    response = await send_with_retry(lambda: client.get("/"), initial=0.01)
    assert response.status_code == 422 and len(calls) == 1


async def test_gives_up_after_the_attempts_with_the_last_response():
    client, calls = server([(502, {})])
    with pytest.raises(RetryableResponse) as err:
        await send_with_retry(lambda: client.get("/"), attempts=3, initial=0.01)
    assert err.value.response.status_code == 502 and len(calls) == 3


def test_the_same_policy_drives_synchronous_retries_bounded_by_time():
    """``retry_policy`` as ``Retrying`` arguments: a time bound instead of attempts, and the
    Retry-After of a ``RetryableResponse`` honoured as for the asynchronous callers."""
    from tenacity import Retrying

    from koppel_shared.http import retry_policy

    request = httpx.Request("GET", "http://x/")
    calls: list[float] = []

    def refused() -> None:
        calls.append(time.monotonic())
        raise RetryableResponse(httpx.Response(503, headers={"Retry-After": "0.2"}, request=request))

    with pytest.raises(RetryableResponse):
        for attempt in Retrying(**retry_policy(attempts=100, initial=0.01, within=0.5)):
            with attempt:
                refused()
    assert 2 <= len(calls) <= 4  # by time (0.5 s at 0.2 s a wait), not by the 100 attempts
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(calls))
