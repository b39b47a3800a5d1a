"""Local infrastructure: make sure PostgreSQL and RabbitMQ answer on their standard ports,
starting them with the machine's own commands when they are down."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time

POSTGRES = ("127.0.0.1", 5432)
RABBITMQ = ("127.0.0.1", 5672)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _start_commands(name: str) -> list[list[str]]:
    if name == "postgresql":
        versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
        return [["pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "start"] for v in versions[-1:]]
    return [["rabbitmq-server", "-detached"]]


def ensure_up(name: str, address: tuple[str, int], wait_seconds: float = 60.0, say=print) -> None:
    if port_open(*address):
        return
    say(f"{name} is not answering on {address[0]}:{address[1]}; starting it")
    for command in _start_commands(name):
        try:
            subprocess.run(command, check=False, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            say(f"  could not run {' '.join(command)}: {exc}")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if port_open(*address):
            return
        time.sleep(0.5)
    raise SystemExit(f"{name} did not come up on {address[0]}:{address[1]}; start it and try again")


def ensure_infrastructure(say=print) -> None:
    ensure_up("postgresql", POSTGRES, say=say)
    ensure_up("rabbitmq", RABBITMQ, say=say)


def ensure_debian_package(command: str, package: str, say=print) -> bool:
    """Install a Debian package when its command is missing and we may (root with apt-get)."""
    if shutil.which(command) or os.path.exists(f"/usr/sbin/{command}"):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say(f"{command} is missing; install the Debian package {package}")
        return False
    say(f"installing {package} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]):
        if subprocess.run(args, capture_output=True, env=env, timeout=600).returncode != 0:
            say(f"could not install {package}")
            return False
    return True


# What the suite drives for real besides PostgreSQL and RabbitMQ: command -> Debian package.
TEST_TOOLS = {"nginx": "nginx", "chromium": "chromium", "pg_dump": "postgresql-client", "envsubst": "gettext-base"}


def ensure_test_tools(say=print) -> None:
    """Install what the tests drive (the gateway's nginx, Chromium for the console, pg_dump,
    envsubst) so that `make test` tests everything on a fresh machine instead of skipping."""
    for command, package in TEST_TOOLS.items():
        ensure_debian_package(command, package, say=say)


if __name__ == "__main__":
    import sys

    ensure_infrastructure()
    if "--test-tools" in sys.argv[1:]:
        ensure_test_tools()
