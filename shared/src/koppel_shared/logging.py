"""Structured logging: JSON lines with the tenant and correlation id bound per request/message.

Context is kept in ``contextvars`` so that everything logged while handling one request or one
message carries the same ``correlation_id`` and ``tenant_id`` without passing them around.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

_SECRET_KEYS = {"authorization", "api_key", "apitoken", "password", "token", "refresh_token", "secret"}


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Logs must never carry a Twikey key or a Twinfield token, whatever a caller passes in.
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.dict_tracebacks if json else structlog.dev.set_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # No file given: each logger writes to the sys.stdout of the moment (tests swap it).
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries that use stdlib logging (uvicorn, aio-pika, alembic) go to stderr at WARNING.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind values (correlation_id, tenant_id, event_id, ...) for the duration of a block."""
    clean = {k: str(v) for k, v in values.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**clean):
        yield


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
