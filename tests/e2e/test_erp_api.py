"""The ERP developer's view, through the gateway of a running system (`koppel run`): a client
generated from the public OpenAPI document works against it, and the ERP quickstart
(docs/erp-quickstart.md) runs as written, step by step, with the sandboxes playing the debtor
and the bank."""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from koppel_cli import openapi
from koppel_testkit.launch import System

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "erp-quickstart.md"
BIN = Path(sys.executable).parent  # python, openapi-python-client, ruff (the generator's formatter)


def _generate(document_url: str, out: Path) -> None:
    done = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--url", document_url, "--meta", "none",
         "--output-path", str(out), "--overwrite"],
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


@pytest.mark.timeout(400)
def test_a_client_generated_from_the_gateways_document_calls_koppel_through_the_gateway(
    system: System, tmp_path: Path
) -> None:
    gateway = system.urls.gateway
    with httpx.Client(timeout=30) as http:
        served = http.get(f"{gateway}{openapi.DOCUMENT_URL}")
        assert served.status_code == 200
        assert served.json() == json.loads((openapi.OUT_DIR / "openapi.json").read_text())
        page = http.get(f"{gateway}{openapi.DOCS_URL}")
        assert page.status_code == 200 and "swagger-ui" in page.text
        for asset in re.findall(rf"{re.escape(openapi.ASSETS_URL)}/[\w.-]+", page.text):
            assert http.get(f"{gateway}{asset}").status_code == 200, asset

    _generate(f"{gateway}{openapi.DOCUMENT_URL}", tmp_path / "koppel_smoke_client")
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("koppel_smoke_client")
        models = importlib.import_module("koppel_smoke_client.models")
        mandates_create = importlib.import_module("koppel_smoke_client.api.mandates.mandates_create")
        invoices_list = importlib.import_module("koppel_smoke_client.api.invoices.invoices_list")

        koppel = client_module.AuthenticatedClient(base_url=gateway, token=system.token)
        number = f"C-{uuid.uuid4().hex[:8].upper()}"
        created = mandates_create.sync_detailed(
            client=koppel,
            body=models.MandateCreate.from_dict(
                {"customer": {"number": number, "name": "An Peeters", "email": "an@example.be"}, "delivery": "link"}
            ),
            idempotency_key=f"smoke-{number}",
        )
        assert created.status_code in (200, 201), created.content
        assert isinstance(created.parsed, models.MandateOut)
        assert created.parsed.customer.number == number and created.parsed.mandate_number

        page_of_invoices = invoices_list.sync(client=koppel, limit=5)
        assert isinstance(page_of_invoices, models.InvoicePage)

        # An error answer is parsed too: the problem+json model with its stable code.
        anonymous = client_module.Client(base_url=gateway)
        refused = invoices_list.sync(client=anonymous)
        assert isinstance(refused, models.Problem)
        assert refused.status == 401 and refused.code == "unauthorized"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "koppel_smoke_client"]:
            del sys.modules[name]


# ---- the quickstart, run as written ---------------------------------------------------------------


@dataclass
class Step:
    number: int
    language: str
    code: str
    options: set[str]
    file: str | None
    heading: str


_STEP = re.compile(r"<!-- quickstart: step(?P<options>[^>]*?)\s*-->\s*\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S)


def quickstart_steps(text: str) -> list[Step]:
    """The blocks marked ``<!-- quickstart: step [background] [file=NAME] -->``, in order."""
    steps = []
    for number, match in enumerate(_STEP.finditer(text), start=1):
        words = match.group("options").split()
        file = next((w.removeprefix("file=") for w in words if w.startswith("file=")), None)
        headings = re.findall(r"^## (.+)$", text[: match.start()], re.M)
        steps.append(
            Step(number, match.group("lang"), match.group("code"), set(words), file, headings[-1] if headings else "")
        )
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Terminal:
    """What the quickstart's reader has: one shell whose exported variables and functions carry
    from step to step, in one working folder."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.state = workdir / ".terminal-state"
        self.state.write_text("".join(f"export {k}={_quote(v)}\n" for k, v in env.items()))
        self.background: list[subprocess.Popen[str]] = []

    def environment(self) -> dict[str, str]:
        done = subprocess.run(
            ["bash", "-c", f"source {self.state} && env -0"], capture_output=True, text=True, check=True, env={}
        )
        return dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)

    def run(self, step: Step) -> str:
        if step.language == "bash":
            script = (
                f"set -euo pipefail\nsource {self.state}\n{step.code}\n"
                f"{{ export -p; declare -fx; }} > {self.state}.next && mv {self.state}.next {self.state}\n"
            )
            command = ["bash", "-c", script]
        elif step.language == "python":
            path = self.workdir / (step.file or f"step_{step.number}.py")
            path.write_text(step.code + "\n")
            command = ["python", path.name]
        else:
            raise AssertionError(f"step {step.number}: no way to run a {step.language} block")
        env = self.environment() if step.language == "python" else {}
        if "background" in step.options:
            return self._start(step, command, env)
        done = subprocess.run(command, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, (
            f"quickstart step {step.number} ({step.heading}) failed with {done.returncode}:\n"
            f"{step.code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
        return done.stdout

    def _start(self, step: Step, command: list[str], env: dict[str, str]) -> str:
        """A program the reader leaves running (the webhook receiver): started, and ready once it
        says its first line."""
        process = subprocess.Popen(
            command, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.background.append(process)
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(process.stdout.readline() if process.stdout else ""))
        reader.start()
        reader.join(timeout=30)
        assert first and first[0] and process.poll() is None, f"quickstart step {step.number} did not start: {first}"
        return first[0]

    def close(self) -> None:
        for process in self.background:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def test_the_quickstart_marks_its_steps_in_both_languages() -> None:
    steps = quickstart_steps(QUICKSTART.read_text())
    assert len(steps) >= 10
    assert {s.language for s in steps} == {"bash", "python"}
    assert [s.file for s in steps if "background" in s.options] == ["erp_webhooks.py"]
    # What the quickstart promises is among the steps: the signed webhooks and the generated client.
    code = "\n".join(s.code for s in steps)
    for promised in ("standardwebhooks", "openapi-python-client generate", "/v1/openapi.json", "_sandbox/"):
        assert promised in code, promised


@pytest.mark.timeout(900)
def test_the_erp_quickstart_runs_as_written_from_a_token_to_a_paid_booked_invoice(
    system: System, tmp_path: Path
) -> None:
    urls = system.urls
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "KOPPEL_URL": urls.gateway,
        "KOPPEL_TOKEN": system.token,
        "TWIKEY_SANDBOX": urls.twikey_sandbox,
        "TWINFIELD_SANDBOX": urls.twinfield_sandbox,
        "ERP_WEBHOOK_PORT": str(_free_port()),
    }
    terminal = Terminal(tmp_path, env)
    outputs: list[str] = []
    try:
        for step in quickstart_steps(QUICKSTART.read_text()):
            outputs.append(terminal.run(step))
    finally:
        terminal.close()

    # Beyond each step's own checks: the receiver kept only webhooks whose signature held, and
    # heard the whole story of the quickstart's invoice.
    received: list[dict[str, Any]] = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    invoice_number = terminal.environment()["INVOICE_NUMBER"]
    types = [e["type"] for e in received if e["data"].get("invoice_number") == invoice_number]
    assert "collection.paid" in types and "booking.booked" in types
    assert any(e["type"] == "mandate.signed" for e in received)
    # The generated client's step printed what it read.
    assert f"invoice {invoice_number}: paid" in outputs[-1]
    assert "refused: validation_error" in outputs[-1]
