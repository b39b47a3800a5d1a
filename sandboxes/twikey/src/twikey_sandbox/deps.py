"""Access to the per-app objects (state, webhook dispatcher, fault registry) from a request."""

from __future__ import annotations

from fastapi import Request

from .faults import FaultRegistry
from .state import SandboxState
from .webhooks import WebhookDispatcher


def state_of(request: Request) -> SandboxState:
    return request.app.state.sandbox


def hooks_of(request: Request) -> WebhookDispatcher:
    return request.app.state.webhooks


def faults_of(request: Request) -> FaultRegistry:
    return request.app.state.faults
