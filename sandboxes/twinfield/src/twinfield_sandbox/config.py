"""Settings of one sandbox instance: token lifetimes, fair-use budgets, default seed data.

The defaults are Twinfield's published numbers (reference §1.1 and §7); tests shrink them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LimitConfig:
    """Fair-use policy numbers. Credits are counted over a sliding 60-second window."""

    enabled: bool = True
    window_seconds: float = 60.0
    read_cost: int = 1
    write_cost: int = 3
    per_ip: int = 1000
    per_client_certified: int = 1000
    per_client_uncertified: int = 50
    per_client_org_certified: int = 500
    per_client_org_uncertified: int = 25
    concurrency_per_client: int = 20
    concurrency_per_client_org: int = 10


@dataclass
class SandboxConfig:
    # Public base URL of this sandbox; used as the cluster URL and in the WSDL. When None it is
    # taken from each request, which is right for a sandbox reached directly.
    base_url: str | None = None
    access_token_seconds: int = 3600
    auth_code_seconds: int = 300
    limits: LimitConfig = field(default_factory=LimitConfig)
    # Extra processing time per SOAP request, so concurrency limits can be exercised.
    latency_seconds: float = 0.0
    # Seed for fault-injection randomness, so a run with rate<1 faults is repeatable.
    seed: int = 1234
    seed_default: bool = True
    default_client_id: str = "koppel-sandbox"
    default_client_secret: str = "koppel-sandbox-secret"
    default_organisation: str = "KOPPEL"
    default_office: str = "NLA000001"
