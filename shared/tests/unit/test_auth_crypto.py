import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from koppel_shared.auth import (
    NO_TENANT,
    KeyFormatError,
    PublicKeys,
    SigningKey,
    TokenError,
    issue_admin_token,
    issue_service_token,
    issue_token,
    issue_token_with_id,
    verify_token,
)
from koppel_shared.crypto import SecretBox, SecretDecryptionError, generate_key

KEY = SigningKey.generate("k1")
KEYS = KEY.public_entry()


def test_token_round_trip_carries_tenant_and_scopes() -> None:
    tenant = uuid.uuid4()
    token = issue_token(KEY, tenant, ["erp", "operator"])
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
    principal = verify_token(KEYS, token)
    assert principal.tenant_id == tenant
    assert principal.has("operator") and not principal.has("internal")


def test_token_signed_by_an_unknown_key_is_refused() -> None:
    with pytest.raises(TokenError, match="unknown key"):
        verify_token(KEYS, issue_token(SigningKey.generate("k2"), uuid.uuid4()))


def test_token_signed_by_another_key_under_a_known_kid_is_refused() -> None:
    impostor = SigningKey.generate("k1")
    with pytest.raises(TokenError, match="Signature verification failed"):
        verify_token(KEYS, issue_token(impostor, uuid.uuid4()))


def test_hs256_token_is_refused_even_when_keyed_with_the_public_key() -> None:
    # Algorithm confusion: an HMAC "signed" with the public key (known to every verifier) must not
    # pass as a token, nor any HS256 token at all.
    public = KEY.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    claims = {"iss": "koppel", "sub": "x", "tid": str(uuid.uuid4()), "scope": "operator", "iat": 0, "exp": 2**40}
    for secret in (public, KEYS.encode(), KEYS.split(":")[1].encode()):
        forged = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "k1"})
        with pytest.raises(TokenError, match="EdDSA"):
            verify_token(KEYS, forged)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(TokenError):
        verify_token(KEYS, unsigned)


def test_rotation_by_kid_accepts_old_and_new_keys_until_the_old_is_dropped() -> None:
    new = SigningKey.generate("k2")
    tenant = uuid.uuid4()
    old_token, new_token = issue_token(KEY, tenant), issue_token(new, tenant)
    both = f"{KEYS},{new.public_entry()}"
    assert verify_token(both, old_token).tenant_id == tenant
    assert verify_token(both, new_token).tenant_id == tenant
    assert verify_token(new.public_entry(), new_token).tenant_id == tenant
    with pytest.raises(TokenError, match="unknown key"):
        verify_token(new.public_entry(), old_token)


def test_expired_token_is_refused() -> None:
    token = issue_token(KEY, uuid.uuid4(), ttl=timedelta(seconds=-5))
    with pytest.raises(TokenError, match="expired"):
        verify_token(KEYS, token)


def test_unknown_scope_cannot_be_issued() -> None:
    with pytest.raises(ValueError):
        issue_token(KEY, uuid.uuid4(), ["admin"])


def test_service_token_acts_for_the_named_tenant_with_internal_scope_only() -> None:
    token = issue_service_token(KEY, "mandate")
    tenant = uuid.uuid4()
    principal = verify_token(KEYS, token, acting_for=str(tenant))
    assert principal.tenant_id == tenant
    assert principal.scopes == {"internal"} and principal.subject == "service:mandate"
    with pytest.raises(TokenError, match="X-Koppel-Tenant"):
        verify_token(KEYS, token)
    with pytest.raises(TokenError):
        verify_token(KEYS, token, acting_for="not-a-uuid")


def test_a_tenant_token_ignores_the_tenant_header() -> None:
    tenant = uuid.uuid4()
    principal = verify_token(KEYS, issue_token(KEY, tenant, ["internal"]), acting_for=str(uuid.uuid4()))
    assert principal.tenant_id == tenant


def test_a_token_without_tenant_that_is_not_a_service_token_is_refused() -> None:
    now = int(time.time())
    claims = {"iss": "koppel", "sub": "x", "svc": "mandate", "scope": "internal operator", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, KEY.private, algorithm="EdDSA", headers={"kid": "k1"})
    with pytest.raises(TokenError, match="no tenant"):
        verify_token(KEYS, token, acting_for=str(uuid.uuid4()))


def test_admin_token_names_no_tenant_and_grants_admin_only() -> None:
    principal = verify_token(KEYS, issue_admin_token(KEY, subject="ops"), acting_for=str(uuid.uuid4()))
    assert principal.admin and principal.scopes == {"admin"}
    # the tenant header does not make it a tenant's token
    assert principal.tenant_id == NO_TENANT and principal.token_tenant == NO_TENANT
    assert principal.subject == "admin:ops" and principal.service is None


def test_tenant_tokens_cannot_carry_the_admin_scope() -> None:
    with pytest.raises(ValueError, match="admin"):
        issue_token(KEY, uuid.uuid4(), ["operator", "admin"])
    now = int(time.time())
    for claims in (
        {"tid": str(uuid.uuid4()), "scope": "operator admin"},  # a tenant token claiming admin too
        {"tid": str(uuid.uuid4()), "scope": "admin", "adm": True},
        {"scope": "admin"},  # no admin mark
        {"scope": "admin operator", "adm": True},  # admin with more
        {"tid": str(NO_TENANT), "scope": "operator"},  # the id that stands for no tenant
    ):
        body = {"iss": "koppel", "sub": "x", "iat": now, "exp": now + 60, **claims}
        token = jwt.encode(body, KEY.private, algorithm="EdDSA", headers={"kid": "k1"})
        with pytest.raises(TokenError):
            verify_token(KEYS, token)


def test_a_service_token_is_revoked_under_no_tenant_whatever_tenant_it_acts_for() -> None:
    principal = verify_token(KEYS, issue_service_token(KEY, "mandate"), acting_for=str(uuid.uuid4()))
    assert principal.token_tenant == NO_TENANT
    tenant = uuid.uuid4()
    assert verify_token(KEYS, issue_token(KEY, tenant)).token_tenant == tenant


def test_issuing_with_id_gives_the_jti_and_expiry_in_the_token() -> None:
    token, jti, expires = issue_token_with_id(KEY, uuid.uuid4(), ["erp"], ttl=timedelta(days=2))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["jti"] == jti == verify_token(KEYS, token).token_id
    assert claims["exp"] == int(expires.timestamp())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "k1",
        "k1:short",
        "k 1:" + "A" * 43,
        "k1:!!!",
        f"{SigningKey.generate('a').public_entry()},{SigningKey.generate('a').public_entry()}",
    ],
)
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        PublicKeys.parse(text)


def test_signing_key_round_trips_through_its_text_form() -> None:
    again = SigningKey.parse(KEY.encoded())
    assert again.kid == "k1" and again.public_entry() == KEY.public_entry()


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
