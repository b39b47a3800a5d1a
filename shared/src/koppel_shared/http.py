"""Outbound HTTP: every call has a timeout and a retry policy.

Timeouts, connection errors, 5xx and 429 are retried with exponential backoff and jitter; a 429
or 503 that says how long to wait (``Retry-After``, or Twikey's
``X-Rate-Limit-Retry-After-Seconds``) is honoured. Other 4xx are the caller's to interpret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_HEADERS = ("retry-after", "x-rate-limit-retry-after-seconds")


class RetryableResponse(Exception):
    """A response worth retrying; carries the server's requested wait, if any."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}")
        self.response = response
        self.retry_after = retry_after_seconds(response)


def retry_after_seconds(response: httpx.Response) -> float | None:
    for name in RETRY_AFTER_HEADERS:
        value = response.headers.get(name)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                continue
    return None


class _Wait:
    def __init__(self, initial: float, max_wait: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=initial, max=max_wait, jitter=initial)
        self._max = max_wait

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableResponse) and exc.retry_after is not None:
            return min(exc.retry_after, self._max)
        return float(self._backoff(state))


def retry_policy(
    attempts: int = 5,
    initial: float = 0.2,
    max_wait: float = 30.0,
    *,
    within: float | None = None,
    on: tuple[type[BaseException], ...] = (RetryableResponse, httpx.TimeoutException, httpx.TransportError),
) -> dict[str, Any]:
    """The policy as tenacity arguments, for ``AsyncRetrying`` here and ``Retrying`` in synchronous
    callers (the test kit). ``within`` (seconds) bounds the retries by time instead of attempts."""
    return {
        "stop": stop_after_attempt(attempts) if within is None else stop_after_delay(within),
        "wait": _Wait(initial, max_wait),
        "retry": retry_if_exception_type(on),
        "reraise": True,
    }


def retrying(attempts: int = 5, initial: float = 0.2, max_wait: float = 30.0) -> AsyncRetrying:
    return AsyncRetrying(**retry_policy(attempts, initial, max_wait))


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    attempts: int = 5,
    initial: float = 0.2,
    max_wait: float = 30.0,
    should_retry: Callable[[httpx.Response], bool] | None = None,
) -> httpx.Response:
    """Call ``send`` until it returns a response that is not worth retrying (or attempts run out,
    in which case the last error is raised: ``RetryableResponse`` or an httpx transport error)."""
    check = should_retry or (lambda r: r.status_code in RETRY_STATUSES)
    async for attempt in retrying(attempts, initial, max_wait):
        with attempt:
            response = await send()
            if check(response):
                raise RetryableResponse(response)
            return response
    raise AssertionError("unreachable")  # pragma: no cover


def make_client(base_url: str = "", timeout: float = 10.0, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(timeout, connect=5.0), **kwargs)
