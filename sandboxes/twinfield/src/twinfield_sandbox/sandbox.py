"""The one object an app holds (`app.state.sandbox`): config, records, limiter and fault rules."""

from __future__ import annotations

from fastapi import Request

from .config import SandboxConfig
from .faults import FaultInjector
from .limits import Limiter
from .seed import seed_default
from .state import SandboxState


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.reset()

    def reset(self, seed: bool | None = None) -> None:
        self.state = SandboxState(self.config)
        self.limiter = Limiter(self.config.limits)
        self.faults = FaultInjector(self.state.rng)
        if self.config.seed_default if seed is None else seed:
            seed_default(self.state)

    def restore(self, state: SandboxState) -> None:
        """Take up records saved earlier (the run's state file); limits and faults start afresh."""
        state.config = self.config  # this start's options (limits, latency) apply
        self.state = state
        self.faults = FaultInjector(state.rng)

    def base_url(self, request: Request) -> str:
        if self.config.base_url:
            return self.config.base_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def get_sandbox(request: Request) -> Sandbox:
    return request.app.state.sandbox
