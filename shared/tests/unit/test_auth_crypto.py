import uuid
from datetime import timedelta

import pytest

from koppel_shared.auth import TokenError, issue_token, verify_token
from koppel_shared.crypto import SecretBox, SecretDecryptionError, generate_key


def test_token_round_trip_carries_tenant_and_scopes() -> None:
    tenant = uuid.uuid4()
    token = issue_token("s" * 32, tenant, ["erp", "operator"])
    principal = verify_token("s" * 32, token)
    assert principal.tenant_id == tenant
    assert principal.has("operator") and not principal.has("internal")


def test_token_signed_with_another_key_is_refused() -> None:
    token = issue_token("a" * 32, uuid.uuid4())
    with pytest.raises(TokenError):
        verify_token("b" * 32, token)


def test_expired_token_is_refused() -> None:
    token = issue_token("s" * 32, uuid.uuid4(), ttl=timedelta(seconds=-5))
    with pytest.raises(TokenError, match="expired"):
        verify_token("s" * 32, token)


def test_unknown_scope_cannot_be_issued() -> None:
    with pytest.raises(ValueError):
        issue_token("s" * 32, uuid.uuid4(), ["admin"])


def test_secret_box_round_trip_and_ciphertext_hides_plaintext() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt("twikey-api-key-123")
    assert "twikey-api-key-123" not in token
    assert box.decrypt(token) == "twikey-api-key-123"


def test_key_rotation_keeps_old_secrets_readable() -> None:
    old, new = generate_key(), generate_key()
    stored = SecretBox(old).encrypt("refresh-token")
    rotated_box = SecretBox(f"{new},{old}")
    assert rotated_box.decrypt(stored) == "refresh-token"
    rotated = rotated_box.rotate(stored)
    assert SecretBox(new).decrypt(rotated) == "refresh-token"
    with pytest.raises(SecretDecryptionError):
        SecretBox(generate_key()).decrypt(stored)
