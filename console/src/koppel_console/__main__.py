"""`python -m koppel_console [--host H] [--port P]`."""

import argparse

import uvicorn

from koppel_console.app import build_app
from koppel_console.settings import Settings
from koppel_shared.logging import configure_logging

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="koppel_console")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    settings = Settings()
    configure_logging("console", settings.log_level, settings.log_json)
    uvicorn.run(
        build_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level="warning",
    )
