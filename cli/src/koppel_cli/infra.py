"""Local infrastructure: make sure PostgreSQL and RabbitMQ answer on their standard ports and
actually work (a broker whose port is open can still have its application stopped or be blocked by
a resource alarm), starting or repairing them with the machine's own commands."""

from __future__ import annotations

import asyncio
import contextlib
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


async def _rabbitmq_round_trip(url: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"probe"), routing_key=queue.name)
        for _ in range(50):
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("a published message never arrived")


async def _postgres_round_trip(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute("CREATE TEMPORARY TABLE koppel_probe (n int); INSERT INTO koppel_probe VALUES (1)")
    finally:
        await connection.close()


def probe(what: str, timeout: float = 20.0) -> str | None:
    """None when the service does real work (a confirmed publish that arrives; a table write),
    else why not. A stopped application, a disk or memory alarm or a full disk all fail here."""
    if what == "rabbitmq":
        check = _rabbitmq_round_trip(os.environ.get("KOPPEL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"))
    else:
        base = os.environ.get("KOPPEL_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
        check = _postgres_round_trip(base.replace("+asyncpg", "") + "/postgres")

    async def bounded() -> None:
        await asyncio.wait_for(check, timeout)

    try:
        asyncio.run(bounded())
    except Exception as exc:  # any failure is the answer
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def _rabbitmq_alarms() -> str:
    if not shutil.which("rabbitmq-diagnostics"):
        return ""
    done = subprocess.run(["rabbitmq-diagnostics", "-q", "check_local_alarms"], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    return "" if done.returncode == 0 else (done.stdout + done.stderr).strip()


def repair_rabbitmq(say=print) -> None:
    """A node whose application was stopped (``rabbitmqctl stop_app``, e.g. by a drill that was
    interrupted) keeps its Erlang node up but closes the port: start the application again."""
    if not shutil.which("rabbitmqctl"):
        return
    for args in (["start_app"], ["await_startup", "--timeout", "60"]):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=90, check=False)
    alarms = _rabbitmq_alarms()
    if alarms:
        say(f"rabbitmq reports alarms: {alarms}")


# Queues that test runs name for themselves: a module's ``t_q_<hex>.`` prefix, a test system's
# ``<name><hex6>_`` prefix (koppel_testkit.launch).
TEST_QUEUES = r"^(t_q_[0-9a-f]{10}\.|[a-z]+[0-9a-f]{6}_)"


def sweep_queues(pattern: str = TEST_QUEUES) -> int:
    """Delete the queues whose names match ``pattern`` and that nobody consumes; how many went.

    Test runs declare durable queues under their own prefixes; left behind, they pile up across
    runs until the broker, recovering them, runs out of file handles and stops answering (seen:
    1,684 queues against 927 handles). Listed with rabbitmqctl (local broker only), deleted over AMQP."""
    import re

    if not shutil.which("rabbitmqctl"):
        return 0
    try:
        listed = subprocess.run(["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "consumers"],
                                capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return 0
    names = []
    for line in listed.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "0" and re.match(pattern, parts[0]):
            names.append(parts[0])
    if names:
        asyncio.run(_delete_queues(names))
    return len(names)


async def _delete_queues(names: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(os.environ.get("KOPPEL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"))
    async with connection:
        channel = await connection.channel()
        for name in names:
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.ChannelClosed:  # gone meanwhile
                channel = await connection.channel()


def ensure_usable(say=print) -> None:
    """Both services do real work, or the process stops with a message saying what is wrong."""
    for name in ("postgresql", "rabbitmq"):
        why = probe(name)
        if why is None:
            continue
        say(f"{name} does not work ({why}); trying to repair it")
        if name == "rabbitmq":
            repair_rabbitmq(say=say)
        else:
            ensure_up(name, POSTGRES, say=say)
        why = probe(name)
        if why is not None:
            disk = shutil.disk_usage("/")
            raise SystemExit(f"{name} does not work: {why} (free disk: {disk.free // 2**20} MiB)")


def ensure_infrastructure(say=print) -> None:
    ensure_up("postgresql", POSTGRES, say=say)
    if not port_open(*RABBITMQ):
        repair_rabbitmq(say=say)  # a stopped application, not a stopped node, is the usual case
    ensure_up("rabbitmq", RABBITMQ, say=say)
    ensure_usable(say=say)


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
TEST_TOOLS = {
    "nginx": "nginx",
    "chromium": "chromium",
    "pg_dump": "postgresql-client",
    "envsubst": "gettext-base",
    # docs/erp-quickstart.md is run as written by a test: its steps use curl and jq.
    "curl": "curl",
    "jq": "jq",
}


def ensure_test_tools(say=print) -> None:
    """Install what the tests drive (the gateway's nginx, Chromium for the console, pg_dump,
    envsubst, the quickstart's curl and jq) so that `make test` tests everything on a fresh
    machine instead of skipping."""
    for command, package in TEST_TOOLS.items():
        ensure_debian_package(command, package, say=say)


if __name__ == "__main__":
    import sys

    ensure_infrastructure()
    if "--test-tools" in sys.argv[1:]:
        ensure_test_tools()
