"""A local Twikey API sandbox: Twikey's wire format under `/creditor`, controls under `/_sandbox`."""

from .server import create_app, run

__all__ = ["create_app", "run"]
