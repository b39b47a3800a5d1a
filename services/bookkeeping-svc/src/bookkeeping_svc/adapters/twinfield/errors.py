"""What can go wrong talking to Twinfield, as one family of exceptions: the caller decides by
the type whether anything may have been applied (``OutcomeUnknown``) or certainly not (the rest).
A SOAP fault is a ``Fault`` wherever it is met (the envelope parser returns it, the client raises
it)."""

from __future__ import annotations


class TwinfieldError(Exception):
    pass


class ConsentLost(TwinfieldError):
    """The refresh token was refused (``invalid_grant``): an operator has to reconnect."""


class OAuthFailed(TwinfieldError):
    pass


class TokenRejected(TwinfieldError):
    """SOAP fault 354/103: the access token is expired, unknown or revoked."""


class RateLimited(TwinfieldError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Twinfield answered 429; retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class OutcomeUnknown(TwinfieldError):
    """A write got no answer (timeout, 5xx, broken connection): it may have been applied."""


class Unavailable(TwinfieldError):
    """A read failed after its retries; nothing changed in Twinfield."""


class Fault(TwinfieldError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"SOAP fault {code}: {message}")
        self.code = code
        self.message = message
