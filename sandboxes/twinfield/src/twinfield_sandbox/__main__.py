"""`python -m twinfield_sandbox --host 127.0.0.1 --port 8602`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import SandboxConfig
from .server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="twinfield_sandbox", description="Local Twinfield sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8602)
    parser.add_argument("--base-url", default=None, help="public URL if reached through a proxy")
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--client-secret", default=None)
    parser.add_argument("--organisation", default=None)
    parser.add_argument("--office", default=None)
    parser.add_argument("--no-limits", action="store_true", help="count credits but never answer 429")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every SOAP request")
    parser.add_argument("--state-file", type=Path, default=None, help="keep records in this file across restarts")
    args = parser.parse_args(argv)
    config = SandboxConfig(base_url=args.base_url, latency_seconds=args.latency)
    if args.client_id:
        config.default_client_id = args.client_id
    if args.client_secret:
        config.default_client_secret = args.client_secret
    if args.organisation:
        config.default_organisation = args.organisation
    if args.office:
        config.default_office = args.office
    config.limits.enabled = not args.no_limits
    run(args.host, args.port, config, state_file=args.state_file)


if __name__ == "__main__":
    main()
