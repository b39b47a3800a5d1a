"""No service and not the console can mint a token: their settings hold public keys only — except
sync-svc, which issues the tokens made from the browser with a key of its own (a kid apart from
the ``koppel`` command's, read from ``KOPPEL_SYNC_TOKEN_SIGNING_KEY`` only), and nothing else.

Checked over every process's settings class, with the signing key set in the environment the way
it is on an operator's machine (so a setting that picked it up would be caught), by trying every
value the settings hold as a signing key and seeing whether the process would accept what it signs.
"""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from koppel_shared.auth import KeyFormatError, SigningKey, TokenError, issue_token, verify_token
from koppel_shared.settings import DEV_SYNC_TOKEN_SIGNING_KEY, DEV_TOKEN_SIGNING_KEY, IssuerSettings, KoppelSettings

SERVICES = ("mandate", "collection", "sync", "bookkeeping", "notify")
# The one signing key a service may hold, by service.
OWN_SIGNING_KEYS = {"sync": "token_signing_key"}


def _settings_classes() -> dict[str, type[KoppelSettings]]:
    classes = {s: importlib.import_module(f"{s}_svc.bootstrap").definition.settings_cls for s in SERVICES}
    classes["console"] = importlib.import_module("koppel_console.settings").Settings
    return classes


def _values(value: Any) -> list[str]:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return [value, *value.split(",")]
    if isinstance(value, list | tuple):
        return [v for item in value for v in _values(item)]
    return []


@pytest.mark.parametrize("name", [*SERVICES, "console"])
def test_no_setting_of_a_service_can_sign_a_token_it_accepts(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_cls = _settings_classes()[name]
    assert not issubclass(settings_cls, IssuerSettings)
    own = OWN_SIGNING_KEYS.get(name)
    assert [f for f in settings_cls.model_fields if "signing" in f or "private" in f] == ([own] if own else [])
    prefix = settings_cls.service_prefix
    monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", DEV_TOKEN_SIGNING_KEY)
    if own is None:  # sync-svc's own variable is its own key's (the test below)
        monkeypatch.setenv(f"{prefix}TOKEN_SIGNING_KEY", DEV_TOKEN_SIGNING_KEY)
    settings = settings_cls(environment="dev")
    # What the issuer signs is accepted (the check below would mean nothing otherwise) ...
    issued = issue_token(SigningKey.parse(DEV_TOKEN_SIGNING_KEY), uuid.uuid4(), ["operator"])
    assert verify_token(settings.public_keys, issued, settings.jwt_issuer).has("operator")
    # ... and nothing the service holds signs a token it accepts.
    tried = 0
    for field, value in settings:
        if field == own:
            continue  # its own key, checked below
        for text in _values(value):
            try:
                key = SigningKey.parse(text)
            except KeyFormatError:
                continue
            tried += 1
            forged = issue_token(key, uuid.uuid4(), ["operator"])
            with pytest.raises(TokenError):
                verify_token(settings.public_keys, forged, settings.jwt_issuer)
            assert text != DEV_TOKEN_SIGNING_KEY, field
    assert tried >= 1  # the public keys themselves have the shape of a key and were tried


def test_sync_svc_signs_with_its_own_key_never_the_koppel_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    settings_cls = _settings_classes()["sync"]
    monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", DEV_TOKEN_SIGNING_KEY)  # the command's, on its machine
    settings = settings_cls(environment="dev")
    assert settings.token_signing_key.get_secret_value() == DEV_SYNC_TOKEN_SIGNING_KEY
    command_key = SigningKey.parse(DEV_TOKEN_SIGNING_KEY)
    assert settings.signing_key.kid != command_key.kid
    # What it signs is accepted everywhere, since its public entry is in every verifier's list ...
    mandate = _settings_classes()["mandate"](environment="dev")
    assert verify_token(mandate.public_keys, issue_token(settings.signing_key, uuid.uuid4(), ["operator"]))
    # ... and the command's key given to it by mistake is refused at start.
    monkeypatch.setenv("KOPPEL_SYNC_TOKEN_SIGNING_KEY", DEV_TOKEN_SIGNING_KEY)
    with pytest.raises(ValidationError, match="koppel command"):
        settings_cls(environment="dev")
