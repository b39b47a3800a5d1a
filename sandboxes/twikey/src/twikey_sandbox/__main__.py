"""`python -m twikey_sandbox --host 127.0.0.1 --port 8601 [--api-key KEY] [--webhook-url URL] [--state-file F]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .server import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="twikey_sandbox", description="Local Twikey API sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8601)
    parser.add_argument("--api-key", default=None, help="API key of the default creditor (random if omitted)")
    parser.add_argument("--webhook-url", default=None, help="webhook URL of the default creditor")
    parser.add_argument("--state-file", type=Path, default=None,
                        help="keep the sandbox's records in this file across restarts (none: start empty)")  # fmt: skip
    args = parser.parse_args()
    run(args.host, args.port, api_key=args.api_key, webhook_url=args.webhook_url, state_file=args.state_file)


if __name__ == "__main__":
    main()
