"""Benchmark: Twikey webhook ingest by sync-svc, beside a bare FastAPI endpoint in the same run.

Both apps are served the same way (``uvicorn.run``, one process, access log off, log level warning)
and loaded by ``wrk`` on loopback with the same threads/connections/duration. Each sync-svc
request is a distinct signed webhook (``GET /webhooks/twikey/{tenant}?type=contract&...`` with
``X-Signature``): verified (HMAC with the cached decrypted API key), stored in PostgreSQL
(committed, ``synchronous_commit=on``) before the answer. The bare endpoint answers 204 and does
nothing. Afterwards the stored rows are counted against wrk's count of 2xx answers.

Usage: ``uv run python bench/twikey_webhooks.py [--seconds 15] [--connections 32] [--threads 2]``
(needs ``wrk``: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import write_result

from koppel_shared.crypto import SecretBox
from koppel_shared.migrations import drop_database, migrate
from sync_svc.bootstrap import definition
from sync_svc.domain.signature import sign

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
ENCRYPTION_KEY = "YmVuY2gta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU="
API_KEY = "BENCH" + uuid.uuid4().hex.upper()

BARE_APP = """
import uvicorn
from fastapi import FastAPI, Response

app = FastAPI()


@app.get("/webhooks/bare/{tenant_id}", status_code=204, response_class=Response)
async def bare(tenant_id: str) -> Response:
    return Response(status_code=204)


uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False, proxy_headers=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def lua_script(paths: list[tuple[str, str | None]]) -> str:
    lines = ["local reqs = {}"]
    for i, (path, signature) in enumerate(paths, 1):
        headers = f'{{["X-Signature"]="{signature}"}}' if signature else "{}"
        lines.append(f'reqs[{i}] = wrk.format("GET", "{path}", {headers})')
    lines += [
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  if i > #reqs then i = 1 end",
        "  return reqs[i]",
        "end",
    ]
    return "\n".join(lines) + "\n"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(out: str) -> dict[str, float]:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "requests_per_s": float(rps.group(1)) if rps else float("nan"),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",  # type: ignore[dict-item]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
    }


def run_wrk(url: str, script: str, seconds: int, connections: int, threads: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    return parse_wrk(out)


async def prepare(database_url: str, tenant_id: uuid.UUID) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    await drop_database(database_url)
    await migrate(definition.migrations_dir, database_url)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO twikey_connections (tenant_id, api_key_enc, base_url) VALUES (:t, :k, 'http://127.0.0.1:1')"
            ),
            {"t": tenant_id, "k": SecretBox(ENCRYPTION_KEY).encrypt(API_KEY)},
        )
    await engine.dispose()


async def stored(database_url: str) -> int:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        count = int(await conn.scalar(sa.text("SELECT count(*) FROM received_webhooks")) or 0)
    await engine.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--distinct", type=int, default=5000, help="distinct signed webhooks cycled through")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    database_url = f"{PG}/bench_sync_webhooks"
    tenant_id = uuid.uuid4()
    asyncio.run(prepare(database_url, tenant_id))

    svc_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "KOPPEL_SYNC_DATABASE_URL": database_url,
        "KOPPEL_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "KOPPEL_LOG_LEVEL": "WARNING",
        "KOPPEL_SYNC_DB_POOL_SIZE": "20",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sync_svc", "api", "--port", str(svc_port)],
            env=env,
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen([sys.executable, "-c", BARE_APP.replace("{port}", str(bare_port))], stdout=subprocess.DEVNULL),
    ]
    try:
        wait_up(f"http://127.0.0.1:{svc_port}/healthz", procs[0])
        wait_up(f"http://127.0.0.1:{bare_port}/webhooks/bare/x", procs[1])
        hooks: list[tuple[str, str | None]] = []
        for i in range(args.distinct):
            query = f"type=contract&mandateNumber=BENCH{i:07d}&event=Sign&state=SIGNED"
            hooks.append((f"/webhooks/twikey/{tenant_id}?{query}", sign(API_KEY, query)))
        svc_script = lua_script(hooks)
        bare_script = lua_script([(f"/webhooks/bare/{tenant_id}?type=contract&mandateNumber=BENCH&event=Sign", None)])
        svc_url, bare_url = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{bare_port}"
        w = (args.warmup, args.connections, args.threads)
        run_wrk(bare_url, bare_script, *w)
        run_wrk(svc_url, svc_script, *w)
        before = asyncio.run(stored(database_url))
        m = (args.seconds, args.connections, args.threads)
        bare = run_wrk(bare_url, bare_script, *m)
        svc = run_wrk(svc_url, svc_script, *m)
        rows = asyncio.run(stored(database_url)) - before
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
        asyncio.run(drop_database(database_url))

    accepted = svc["requests"] - svc["non_2xx"]
    figures = {
        "load_generator": f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s",
        "bare_fastapi": bare,
        "sync_svc_webhooks": svc,
        "webhooks_stored": rows,
        "webhooks_accepted_2xx": accepted,
        "rate_vs_bare": round(svc["requests_per_s"] / bare["requests_per_s"], 3),
        "p99_vs_bare": round(svc["p99_ms"] / bare["p99_ms"], 3),
        "targets": {"rate_vs_bare": ">= 0.5", "p99_vs_bare": "<= 2.0"},
    }
    path = write_result(
        "twikey_webhooks",
        figures,
        notes="Signed webhooks verified + committed to PostgreSQL before the 204; bare = empty FastAPI route; "
        "same uvicorn settings, same wrk run parameters, measured back to back.",
    )
    print(
        f"bare FastAPI : {bare['requests_per_s']:8.0f} req/s  p50 {bare['p50_ms']:.2f} ms  p99 {bare['p99_ms']:.2f} ms"
    )
    print(f"sync webhooks: {svc['requests_per_s']:8.0f} req/s  p50 {svc['p50_ms']:.2f} ms  p99 {svc['p99_ms']:.2f} ms")
    print(f"rate {figures['rate_vs_bare']:.0%} of bare, p99 {figures['p99_vs_bare']:.2f}x bare")
    print(f"accepted {accepted}, stored {rows}, non-2xx {svc['non_2xx']}  ->  {path}")


if __name__ == "__main__":
    main()
