"""Twinfield sandbox: a local server speaking Twinfield's OAuth2 and ProcessXml SOAP wire formats,
with a control API for seeding, fault injection and inspection."""

from .config import LimitConfig, SandboxConfig
from .server import create_app, run

__all__ = ["LimitConfig", "SandboxConfig", "create_app", "run"]
