"""The reference receiver in docs/erp-webhooks.md verifies what Koppel signs, and refuses a
tampered body — checked against the independent ``standardwebhooks`` package."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from notify_svc.domain.signing import format_secret, webhook_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "erp-webhooks.md"


def reference_verify() -> Any:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["verify"]


def test_the_documented_verifier_accepts_koppel_signatures_and_refuses_tampering() -> None:
    verify = reference_verify()
    secret = format_secret(b"k" * 24)
    body = b'{"id":"e1","type":"collection.paid","data":{"version":3}}'
    headers = webhook_headers([secret], "e1", int(datetime.now(UTC).timestamp()), body)
    assert verify(secret, headers, body)["data"]["version"] == 3
    assert Webhook(secret).verify(body, headers)["id"] == "e1"
    with pytest.raises(ValueError):
        verify(secret, headers, body.replace(b"3", b"4"))
    with pytest.raises(ValueError):
        verify(format_secret(b"z" * 24), headers, body)
