"""Outbound retries (on httpx's mock transport): 5xx and 429 are retried, Retry-After honoured,
other 4xx returned at once."""

from __future__ import annotations

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
