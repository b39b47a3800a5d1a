"""The field lengths Twikey's description gives (development-kit ``docs/openapi.yaml``,
``maxLength`` of the form fields): a longer value is refused with ``err_invalid_params`` naming
the field ("Invalid parameter (see extra field)"), before anything is created or changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MANDATE = {"customerNumber": 50}
_TRANSACTION = {"mndtId": 35, "message": 140}

# (method, path below /creditor) -> field -> maximum length
MAX_LENGTHS: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/invite"): _MANDATE,
    ("POST", "/prepare"): _MANDATE,
    ("POST", "/sign"): {**_MANDATE, "campaign": 250, "key": 36},
    ("POST", "/mandate/update"): {
        "firstname": 50,
        "lastname": 50,
        "companyName": 140,
        "coc": 50,
        "l": 2,
        "customerNumber": 50,
    },
    ("POST", "/transaction"): _TRANSACTION,  # also each item of /transaction/bulk
    ("POST", "/payment/link"): {
        "customerNumber": 50,
        "email": 70,
        "lastname": 50,
        "firstname": 50,
        "companyName": 140,
        "coc": 50,
        "l": 5,
        "mobile": 50,
        "title": 140,
        "address": 70,
        "city": 50,
        "zip": 12,
        "country": 2,
    },
}


def too_long(method: str, path: str, params: Mapping[str, Any]) -> tuple[str, int] | None:
    """The first field of ``params`` longer than the description allows on that endpoint, with
    its limit; ``path`` with or without the ``/creditor`` prefix."""
    limits = MAX_LENGTHS.get((method.upper(), path.removeprefix("/creditor").rstrip("/")), {})
    for name, limit in limits.items():
        value = params.get(name)
        if isinstance(value, str) and len(value) > limit:
            return name, limit
    return None
