"""``koppel run``: every process of Koppel on this machine, supervised, stopped cleanly by Ctrl-C.

Migrates each service, starts its API and worker, the sandboxes, waits until everything is
ready, and prints the URLs and a demo tenant's token. Process output goes to ``var/log/<name>.log``;
an admin token for the local system (to create tenants, e.g. in the console) is written beside
it, to ``var/admin-token``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from koppel_cli.demo import DEMO_TWIKEY_KEY, Urls
from koppel_shared.auth import SigningKey, issue_admin_token, issue_service_token, issue_token
from koppel_shared.settings import DEV_SYNC_TOKEN_SIGNING_KEY, DEV_TOKEN_PUBLIC_KEYS, IssuerSettings

SERVICES = {"mandate": 8101, "collection": 8102, "sync": 8103, "bookkeeping": 8104, "notify": 8105}
# The services that call sync-svc's internal API, each with a service token of its own.
SYNC_CALLERS = ("mandate", "bookkeeping")
SANDBOXES = {"twikey": 8601, "twinfield": 8602}
GATEWAY_PORT = 8080
CONSOLE_PORT = 8100
# Ten processes share one local PostgreSQL (100 connections by default). (pool, overflow): an
# API mostly answers reads; a worker runs its loops and consumers side by side, and a pool
# smaller than that would open and close a connection for every burst. At most 75, plus one
# LISTEN connection per loop.
API_POOL = (3, 3)
WORKER_POOL = (7, 2)
REPO = Path(__file__).resolve().parents[3]
DEMO_TENANT = uuid.uuid5(uuid.NAMESPACE_URL, "https://koppel.dev/tenants/demo")


@dataclass
class Plan:
    offset: int = 0
    prefix: str = ""
    log_dir: Path = Path("var/log")
    sandboxes: bool = True
    gateway: bool = True
    env: dict[str, str] = field(default_factory=dict)

    def port(self, base: int) -> int:
        return base + self.offset

    @property
    def state_dir(self) -> Path:
        """What the sandboxes keep across restarts, beside the logs (var/state for var/log)."""
        return self.log_dir.parent / "state"

    @property
    def admin_token_file(self) -> Path:
        """Where the local system's admin token is written (var/admin-token for var/log)."""
        return self.log_dir.parent / f"{self.prefix}admin-token"

    def sandbox_state_file(self, name: str) -> Path:
        return self.state_dir / f"{self.prefix}sandbox-{name}.pickle"

    @property
    def public_url(self) -> str:
        """Where Twikey's webhooks and browsers reach Koppel: the gateway, or sync-svc without it."""
        if self.gateway:
            return f"http://127.0.0.1:{self.port(GATEWAY_PORT)}"
        return f"http://127.0.0.1:{self.port(SERVICES['sync'])}"

    def service_urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{self.port(base)}" for name, base in SERVICES.items()}

    def demo_urls(self) -> Urls:
        return Urls(
            gateway=self.public_url,
            twikey_sandbox=f"http://127.0.0.1:{self.port(SANDBOXES['twikey'])}",
            twinfield_sandbox=f"http://127.0.0.1:{self.port(SANDBOXES['twinfield'])}",
        )

    def environment(self, process: str = "") -> dict[str, str]:
        """Every process's environment; ``process`` (``sync-api``, ...) adds what only it holds."""
        env = dict(os.environ)
        env.setdefault("KOPPEL_ENVIRONMENT", "dev")
        env.setdefault("KOPPEL_LOG_JSON", "true")
        env["PYTHONUNBUFFERED"] = "1"
        if self.prefix:
            env["KOPPEL_EXCHANGE"] = f"{self.prefix}koppel.events"
            env["KOPPEL_QUEUE_PREFIX"] = self.prefix
        for name, base in SERVICES.items():
            up = name.upper()
            env.setdefault(
                f"KOPPEL_{up}_DATABASE_URL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.prefix}koppel_{name}"
            )
            env[f"KOPPEL_{up}_API_PORT"] = str(self.port(base))
            env[f"KOPPEL_{up}_URL"] = f"http://127.0.0.1:{self.port(base)}"
        for name, base in SANDBOXES.items():
            env[f"KOPPEL_SANDBOX_{name.upper()}_URL"] = f"http://127.0.0.1:{self.port(base)}"
        env["KOPPEL_SYNC_PUBLIC_BASE_URL"] = self.public_url
        env["KOPPEL_BOOKKEEPING_TWINFIELD_LOGIN_URL"] = f"http://127.0.0.1:{self.port(SANDBOXES['twinfield'])}"
        env["KOPPEL_BOOKKEEPING_TWINFIELD_REDIRECT_URI"] = f"{self.public_url}/v1/twinfield/oauth/callback"
        # after Twinfield's consent the browser goes back to the console's Twinfield settings
        env.setdefault("KOPPEL_BOOKKEEPING_CONSOLE_URL", f"{self.public_url}/console")
        env.update(self.env)
        # The services get the public half of the key `koppel` signs with, and service tokens
        # signed by it, never the signing key itself (left unset, all are the development ones).
        # sync-svc's own signing key (it issues the tokens made from the browser) goes to sync-svc
        # only; its public half joins the `koppel` key's in every process's list.
        signing = env.pop("KOPPEL_TOKEN_SIGNING_KEY", None)
        sync_signing = env.pop("KOPPEL_SYNC_TOKEN_SIGNING_KEY", None)
        sync_public = SigningKey.parse(sync_signing or DEV_SYNC_TOKEN_SIGNING_KEY).public_entry()
        if signing:
            key = SigningKey.parse(signing)
            env.setdefault("KOPPEL_TOKEN_PUBLIC_KEYS", f"{key.public_entry()},{sync_public}")
            for caller in SYNC_CALLERS:
                env.setdefault(f"KOPPEL_{caller.upper()}_SYNC_TOKEN", issue_service_token(key, caller))
        elif sync_signing:
            env.setdefault("KOPPEL_TOKEN_PUBLIC_KEYS", f"{DEV_TOKEN_PUBLIC_KEYS},{sync_public}")
        if sync_signing and process.startswith("sync-"):
            env["KOPPEL_SYNC_TOKEN_SIGNING_KEY"] = sync_signing
        return env


def fresh_start(plan: Plan, say: Callable[[str], None] = print) -> None:
    """Empty databases and empty sandboxes, together: records kept on one side only would make
    Koppel and the sandboxes disagree about what exists."""
    import asyncio

    from koppel_shared.migrations import drop_database

    env = plan.environment()
    if env.get("KOPPEL_ENVIRONMENT") == "prod":
        raise SystemExit("--fresh drops databases; it is refused with KOPPEL_ENVIRONMENT=prod")
    urls = [env[f"KOPPEL_{name.upper()}_DATABASE_URL"] for name in SERVICES]

    async def drop() -> None:
        for url in urls:
            await drop_database(url)

    say("starting afresh: dropping " + ", ".join(u.rsplit("/", 1)[-1] for u in urls) + " and the sandboxes' records")
    asyncio.run(drop())
    for name in SANDBOXES:
        plan.sandbox_state_file(name).unlink(missing_ok=True)


class Supervisor:
    def __init__(self, plan: Plan, say=print) -> None:
        self.plan = plan
        self.say = say
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        self.restarts: dict[str, list[float]] = {}
        plan.log_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, args: list[str], pool: tuple[int, int] | None = None) -> None:
        env = self.plan.environment(name)
        if pool is not None and "KOPPEL_DB_POOL_SIZE" not in env:
            env["KOPPEL_DB_POOL_SIZE"], env["KOPPEL_DB_MAX_OVERFLOW"] = str(pool[0]), str(pool[1])
        self._launch(name, [sys.executable, *args], env)

    def _launch(self, name: str, argv: list[str], env: dict[str, str] | None) -> None:
        log = open(self.plan.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child)
        self.commands[name] = (argv, env)
        self.children[name] = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._write_pids()

    def _write_pids(self) -> None:
        """``pids.json`` beside the logs: which process is which, for operators and the chaos run."""
        pids = {name: proc.pid for name, proc in self.children.items()}
        target = self.plan.log_dir / "pids.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids, indent=1))
        tmp.replace(target)

    def restart_dead(self, window: float = 60.0, limit: int = 5) -> list[str]:
        """What a container runtime does with ``restart: unless-stopped``: a process that died is
        started again. One that keeps dying (``limit`` times within ``window`` seconds) stops the run."""
        restarted = []
        now = time.monotonic()
        for name, proc in list(self.children.items()):
            if proc.poll() is None:
                continue
            recent = [t for t in self.restarts.get(name, []) if now - t < window]
            if len(recent) >= limit:
                raise SystemExit(
                    f"{name} keeps exiting (last code {proc.returncode}); see {self.plan.log_dir / (name + '.log')}"
                )
            self.restarts[name] = [*recent, now]
            self.say(f"{name} exited with code {proc.returncode}; starting it again")
            argv, env = self.commands[name]
            self._launch(name, argv, env)
            restarted.append(name)
        return restarted

    def migrate(self) -> None:
        running = {
            name: subprocess.Popen(
                [sys.executable, "-m", f"{name}_svc", "migrate"],
                env=self.plan.environment(f"{name}-migrate"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in SERVICES
        }
        for name, proc in running.items():
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"migrations of {name}-svc failed:\n{err[-2000:]}")

    def start_gateway(self) -> bool:
        """nginx from the same template as the containers, rendered for local ports."""
        if not self.plan.gateway:
            return False
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if nginx is None:
            self.say("nginx is not installed (apt-get install nginx): starting without the gateway")
            return False
        render = _load_render()
        prefix = (self.plan.log_dir.parent / "gateway").resolve()
        resolv = Path("/etc/resolv.conf")
        values = {
            "GATEWAY_LISTEN": f"127.0.0.1:{self.plan.port(GATEWAY_PORT)}",
            "CONSOLE_UPSTREAM": f"127.0.0.1:{self.plan.port(CONSOLE_PORT)}",
            "GATEWAY_API_DOCS": str(REPO / "deploy/gateway/api"),
            "NGINX_LOCAL_RESOLVERS": render.local_resolvers(resolv.read_text() if resolv.exists() else ""),
            **{f"{n.upper()}_UPSTREAM": f"127.0.0.1:{self.plan.port(b)}" for n, b in SERVICES.items()},
        }
        user = "root" if os.geteuid() == 0 else None
        conf = render.write_standalone(prefix, values, user=user)
        self._launch("gateway", [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"], None)
        return True

    def start(self) -> None:
        if self.plan.sandboxes:
            for name, base in SANDBOXES.items():
                args = ["-m", f"{name}_sandbox", "--host", "127.0.0.1", "--port", str(self.plan.port(base))]
                # Kept across restarts as the real services keep their records (`koppel run --fresh`
                # starts them, and the databases, empty).
                args += ["--state-file", str(self.plan.sandbox_state_file(name))]
                if name == "twikey":  # the demo tenant's creditor, its webhooks going to Koppel
                    args += ["--api-key", DEMO_TWIKEY_KEY]
                    args += ["--webhook-url", f"{self.plan.public_url}/webhooks/twikey/{DEMO_TENANT}"]
                self._spawn(f"sandbox-{name}", args)
        for name, base in SERVICES.items():
            self._spawn(f"{name}-api", ["-m", f"{name}_svc", "api", "--port", str(self.plan.port(base))], API_POOL)
            self._spawn(f"{name}-worker", ["-m", f"{name}_svc", "worker"], WORKER_POOL)
        self._spawn("console", ["-m", "koppel_console", "--port", str(self.plan.port(CONSOLE_PORT))])

    def wait_ready(self, timeout: float = 90.0) -> None:
        urls = {f"{n}-api": f"http://127.0.0.1:{self.plan.port(b)}/readyz" for n, b in SERVICES.items()}
        if "gateway" in self.children:
            urls["gateway"] = f"http://127.0.0.1:{self.plan.port(GATEWAY_PORT)}/healthz"
        urls["console"] = f"http://127.0.0.1:{self.plan.port(CONSOLE_PORT)}/healthz"
        if self.plan.sandboxes:
            for name, base in SANDBOXES.items():
                urls[f"sandbox-{name}"] = f"http://127.0.0.1:{self.plan.port(base)}/_sandbox/" + (
                    "health" if name == "twikey" else "info"
                )
        deadline = time.monotonic() + timeout
        pending = dict(urls)
        while pending:
            self.check_alive()
            for name, url in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        del pending[name]
            if time.monotonic() > deadline:
                raise SystemExit(f"not ready after {timeout:.0f} s: {', '.join(pending)} (see {self.plan.log_dir})")
            time.sleep(0.3)

    def check_alive(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise SystemExit(
                    f"{name} exited with code {proc.returncode}; see {self.plan.log_dir / (name + '.log')}"
                )

    def stop(self, grace: float = 10.0) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def demo_token(settings: IssuerSettings) -> str:
    return issue_token(settings.signing_key, DEMO_TENANT, ["erp", "operator"], subject="demo")


def write_admin_token(plan: Plan, settings: IssuerSettings) -> Path:
    """An admin token for this local system (creates tenants), readable by its owner only."""
    target = plan.admin_token_file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(issue_admin_token(settings.signing_key, subject="koppel-run") + "\n")
    return target


def _load_render() -> Any:
    """deploy/gateway/render.py renders the one gateway template for containers and for here."""
    spec = importlib.util.spec_from_file_location("koppel_gateway_render", REPO / "deploy/gateway/render.py")
    if spec is None or spec.loader is None:
        raise SystemExit("deploy/gateway/render.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(plan: Plan, token: str, gateway: bool) -> str:
    lines = ["", "Koppel is running.", ""]
    if gateway:
        url = f"http://127.0.0.1:{plan.port(GATEWAY_PORT)}"
        lines += [
            f"  {'gateway':16} {url}   (ERP API under {url}/v1/...)",
            f"  {'console':16} {url}/console/   (sign in with the tenant token below)",
            f"  {'API docs':16} {url}/v1/docs   (OpenAPI: {url}/v1/openapi.json)",
            "",
        ]
    for name, base in SERVICES.items():
        port = plan.port(base)
        lines.append(f"  {name + '-svc':16} http://127.0.0.1:{port}   docs: http://127.0.0.1:{port}/docs")
    if plan.sandboxes:
        for name, base in SANDBOXES.items():
            lines.append(f"  {name + ' sandbox':16} http://127.0.0.1:{plan.port(base)}")
    lines += [
        "",
        f"  demo tenant      {DEMO_TENANT}",
        f"  tenant token     {token}",
        f"  admin token      in {plan.admin_token_file}   (creates tenants)",
        f"  logs             {plan.log_dir}/",
        "",
        "Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines)
