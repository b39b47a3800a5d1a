"""The container deliverables, checked without Docker: docker-compose.yml, the Dockerfiles,
.dockerignore, .env.example and the gateway's nginx template.

Docker does not run on the development machines, so these tests read the files the way Docker,
Compose and nginx would and check the properties that matter: every service runs as
migrate/api/worker with the right commands and start-up order, everything but the gateway can be
scaled, each image installs its own package from the lock with its migrations where the code looks
for them, the compose environment really configures each service, and the gateway routes every
public prefix to the right service (checked with nginx itself when it is installed).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from koppel_testkit.dockerfiles import BASE_ENV, Dockerfile, Instruction

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("mandate", "collection", "sync", "bookkeeping", "notify")
# The services that call sync-svc's internal API with a service token (KOPPEL_<NAME>_SYNC_TOKEN).
SYNC_CALLERS = ("mandate", "bookkeeping")
SANDBOXES = {"twikey-sandbox": "sandboxes/twikey", "twinfield-sandbox": "sandboxes/twinfield"}
ROLES = ("migrate", "api", "worker")
SERVICE_DOCKERFILE = "services/Dockerfile"  # one for the five services, told which by SERVICE
COMMANDS = {"migrate": ["migrate"], "api": ["api", "--host", "0.0.0.0", "--port", "8000"], "worker": ["worker"]}

# Public path -> the service the gateway must send it to (and the path that service receives).
ROUTES: dict[str, tuple[str, str]] = {
    "/v1/mandates": ("mandate", "/v1/mandates"),
    "/v1/mandates/MND-1/invite": ("mandate", "/v1/mandates/MND-1/invite"),
    "/v1/customers": ("mandate", "/v1/customers"),
    "/v1/unclaimed-mandates": ("mandate", "/v1/unclaimed-mandates"),
    "/v1/invoices": ("collection", "/v1/invoices"),
    "/v1/collection-policy": ("collection", "/v1/collection-policy"),
    "/v1/collection-policy/preview": ("collection", "/v1/collection-policy/preview"),
    "/v1/subscriptions": ("collection", "/v1/subscriptions"),
    "/v1/pay-links": ("collection", "/v1/pay-links"),
    "/v1/collections": ("collection", "/v1/collections"),
    "/v1/collections/c1?state=paid": ("collection", "/v1/collections/c1?state=paid"),
    "/v1/parked-updates/retry": ("collection", "/v1/parked-updates/retry"),
    "/v1/twikey": ("sync", "/v1/twikey"),
    "/v1/twikey/connection": ("sync", "/v1/twikey/connection"),
    "/v1/twikey/connection/test": ("sync", "/v1/twikey/connection/test"),
    "/v1/twikey/feeds": ("sync", "/v1/twikey/feeds"),
    "/v1/tenants": ("sync", "/v1/tenants"),
    "/v1/tenants/me": ("sync", "/v1/tenants/me"),
    "/v1/tokens": ("sync", "/v1/tokens"),
    "/v1/tokens/0f5b8f3e2a474c1e": ("sync", "/v1/tokens/0f5b8f3e2a474c1e"),
    "/webhooks/twikey/": ("sync", "/webhooks/twikey/"),
    "/webhooks/twikey/tenant-1?msg=Update": ("sync", "/webhooks/twikey/tenant-1?msg=Update"),
    "/webhooks/twikey": ("sync", "/webhooks/twikey"),
    "/v1/twinfield": ("bookkeeping", "/v1/twinfield"),
    "/v1/twinfield/offices": ("bookkeeping", "/v1/twinfield/offices"),
    "/v1/twinfield/accounts?office=NLA000001": ("bookkeeping", "/v1/twinfield/accounts?office=NLA000001"),
    "/v1/twinfield/oauth/callback?code=c&state=s": ("bookkeeping", "/v1/twinfield/oauth/callback?code=c&state=s"),
    "/v1/bookings": ("bookkeeping", "/v1/bookings"),
    "/v1/reconciliation/runs": ("bookkeeping", "/v1/reconciliation/runs"),
    "/v1/webhook-endpoints": ("notify", "/v1/webhook-endpoints"),
    "/v1/webhook-endpoints/e1/test": ("notify", "/v1/webhook-endpoints/e1/test"),
    "/v1/events": ("notify", "/v1/events"),
    "/v1/deliveries": ("notify", "/v1/deliveries"),
    "/console/": ("console", "/console/"),
    "/console/tenants": ("console", "/console/tenants"),
    **{f"/docs/{name}/openapi.json": (name, "/openapi.json") for name in SERVICES},
}
NOT_ROUTED = ("/", "/metrics", "/readyz", "/openapi.json", "/v1/unknown", "/docs/mandate/other", "/webhooks/other")


# ---- helpers ------------------------------------------------------------------------------------
_INTERPOLATION = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}."""

    def substitute(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":?", "?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def compose_variables(compose: dict[str, Any]) -> dict[str, str | None]:
    """Variables docker-compose.yml reads from the environment -> their operator (None, ':-', ':?')."""
    found: dict[str, str | None] = {}
    for m in (m for text in _strings(compose) for m in _INTERPOLATION.finditer(text)):
        if m.group(0) == "$$":
            continue
        name = m.group(1) or m.group(4)
        if found.get(name) != ":?":
            found[name] = m.group(2)
    return found


def read_dotenv(path: Path) -> tuple[dict[str, str], set[str]]:
    """Assignments of a .env file, and the names only mentioned as commented-out assignments."""
    values: dict[str, str] = {}
    commented: set[str] = set()
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            values[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(m.group(1))
    return values, commented


def dockerignore_patterns() -> list[tuple[re.Pattern[str], bool]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        body = line.lstrip("!").strip("/")
        regex, i = "", 0
        while i < len(body):
            if body.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif body.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif body[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif body[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif body[i] == "[":
                end = body.index("]", i)
                regex, i = regex + body[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(body[i]), i + 1
        patterns.append((re.compile(regex + "$"), negate))
    return patterns


def is_dockerignored(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; a path is out if it or a parent is out."""
    patterns = dockerignore_patterns()
    parts = relative.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        excluded = False
        for regex, negate in patterns:
            if regex.match(prefix):
                excluded = not negate
        if excluded:
            return True
    return False


def workspace_members() -> dict[str, Path]:
    """Distribution name -> directory, for every uv workspace member."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for directory in ROOT.glob(pattern):
            if (directory / "pyproject.toml").is_file():
                members[tomllib.loads((directory / "pyproject.toml").read_text())["project"]["name"]] = directory
    return members


def workspace_closure(name: str, members: dict[str, Path]) -> set[str]:
    """The member and every workspace member it depends on, transitively."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        project = tomllib.loads((members[current] / "pyproject.toml").read_text())
        for requirement in project["project"].get("dependencies", []):
            dep = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
            if dep in members:
                todo.append(dep)
    return seen


def built_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def module_of(dockerfile: Dockerfile) -> str:
    process = dockerfile.process()
    assert process[:2] == ["python", "-m"] and len(process) >= 3, process
    return process[2]


def host_port(entry: Any) -> str | None:
    """The fixed host port of a compose port entry, or None if the host port is left to Docker."""
    if isinstance(entry, dict):
        return str(entry["published"]) if entry.get("published") not in (None, "") else None
    parts = interpolate(str(entry), {}).split(":")
    if len(parts) == 1:
        return None
    published = parts[-2]
    return published or None


# ---- compose: services, commands, start-up order, scaling ---------------------------------------
@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_as_migrate_api_and_worker_from_its_own_image(compose: dict[str, Any], name: str) -> None:
    services = compose["services"]
    images = set()
    for role in ROLES:
        svc = services[f"{name}-{role}"]
        assert svc["command"] == COMMANDS[role], f"{name}-{role}"
        assert svc["build"] == {"context": ".", "dockerfile": SERVICE_DOCKERFILE, "args": {"SERVICE": name}}
        images.add(svc["image"])
    (image,) = images  # one image for the three roles
    assert interpolate(image, {}) == f"koppel/{name}-svc:dev"
    assert interpolate(image, {"KOPPEL_IMAGE_REGISTRY": "r.example/k", "KOPPEL_IMAGE_TAG": "1.2"}) == (
        f"r.example/k/{name}-svc:1.2"
    )


def test_compose_has_exactly_the_expected_services(compose: dict[str, Any]) -> None:
    expected = {"rabbitmq", "postgres", "gateway", "console", *SANDBOXES}
    expected |= {f"{name}-{role}" for name in SERVICES for role in ROLES}
    assert set(compose["services"]) == expected


def test_only_the_gateway_publishes_a_fixed_host_port(compose: dict[str, Any]) -> None:
    fixed = {
        name: [host_port(p) for p in svc.get("ports", []) if host_port(p)] for name, svc in compose["services"].items()
    }
    assert {name: ports for name, ports in fixed.items() if ports} == {"gateway": ["8080"]}
    (entry,) = compose["services"]["gateway"]["ports"]
    assert interpolate(entry, {"KOPPEL_GATEWAY_PORT": "9000"}) == "9000:8080"  # the host port is the operator's
    assert interpolate(entry, {}).split(":")[-1] == compose["services"]["gateway"]["environment"]["GATEWAY_LISTEN"]
    for name in SERVICES:
        for role in ROLES:
            assert "ports" not in compose["services"][f"{name}-{role}"]


def test_no_service_pins_a_container_name_so_all_can_scale(compose: dict[str, Any]) -> None:
    assert [name for name, svc in compose["services"].items() if "container_name" in svc] == []


@pytest.mark.parametrize("name", SERVICES)
def test_api_and_worker_start_after_healthy_infrastructure_and_a_completed_migrate(
    compose: dict[str, Any], name: str
) -> None:
    services = compose["services"]
    for role in ("api", "worker"):
        assert services[f"{name}-{role}"]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "rabbitmq": {"condition": "service_healthy"},
            f"{name}-migrate": {"condition": "service_completed_successfully"},
        }
        assert services[f"{name}-{role}"]["restart"] == "unless-stopped"
    migrate = services[f"{name}-migrate"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"


@pytest.mark.parametrize("name", SERVICES)
def test_only_the_api_keeps_the_image_healthcheck(compose: dict[str, Any], name: str) -> None:
    services = compose["services"]
    assert "healthcheck" not in services[f"{name}-api"]  # the image's HEALTHCHECK on /healthz
    assert services[f"{name}-worker"]["healthcheck"] == {"disable": True}
    assert services[f"{name}-migrate"]["healthcheck"] == {"disable": True}


def test_infrastructure_uses_official_images_with_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert re.fullmatch(r"rabbitmq:[\w.]+-management(-alpine)?", services["rabbitmq"]["image"])
    assert re.fullmatch(r"postgres:[\w.-]+", services["postgres"]["image"])
    assert re.fullmatch(r"nginx:[\w.-]+", services["gateway"]["image"])
    for name in ("rabbitmq", "postgres", "gateway"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    assert "rabbitmq-diagnostics" in services["rabbitmq"]["healthcheck"]["test"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"][1]
    assert "/healthz" in services["gateway"]["healthcheck"]["test"][-1]
    # The services create their own databases: no init scripts mounted.
    assert not any("docker-entrypoint-initdb.d" in str(v) for v in services["postgres"].get("volumes", []))


def test_gateway_waits_for_every_api(compose: dict[str, Any]) -> None:
    assert compose["services"]["gateway"]["depends_on"] == {
        **{f"{name}-api": {"condition": "service_healthy"} for name in SERVICES},
        "console": {"condition": "service_healthy"},
    }


def test_sandboxes_run_only_under_the_sandbox_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    profiled = {name for name, svc in services.items() if "profiles" in svc}
    assert profiled == set(SANDBOXES)
    for name, directory in SANDBOXES.items():
        assert services[name]["profiles"] == ["sandbox"]
        assert services[name]["build"] == {"context": ".", "dockerfile": f"{directory}/Dockerfile"}
    # A service outside the profile must not need one inside it (`docker compose up` would fail).
    for name, svc in services.items():
        if name not in profiled:
            assert not set(svc.get("depends_on", {})) & profiled, name


# ---- compose: environment and secrets -----------------------------------------------------------
def _value_node(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    """A mapping's value for ``key`` in the YAML node graph, following ``<<`` merge keys."""
    for k, v in mapping.value:
        if k.value == key:
            return v
    for k, v in mapping.value:
        if k.value == "<<":
            for merged in v.value if isinstance(v, yaml.SequenceNode) else [v]:
                if (found := _value_node(merged, key)) is not None:
                    return found
    return None


def test_every_koppel_process_gets_the_shared_environment_anchor() -> None:
    """One definition, not fifteen copies: in the node graph the YAML parser builds, every
    process's environment is the very node of ``x-koppel-env`` (an alias of its anchor)."""
    root = yaml.compose((ROOT / "docker-compose.yml").read_text())
    shared = _value_node(root, "x-koppel-env")
    services = _value_node(root, "services")
    assert shared is not None and services is not None
    for name in SERVICES:
        # Only the services that call sync-svc's internal API get a service token, their own; only
        # sync-svc gets its signing key.
        own = {f"KOPPEL_{name.upper()}_SYNC_TOKEN"} & {f"KOPPEL_{c.upper()}_SYNC_TOKEN" for c in SYNC_CALLERS}
        own |= {"KOPPEL_SYNC_TOKEN_SIGNING_KEY"} if name == "sync" else set()
        for role in ROLES:
            service = _value_node(services, f"{name}-{role}")
            assert service is not None, f"{name}-{role}"
            environment = _value_node(service, "environment")
            if not own:
                assert environment is shared, f"{name}-{role}"
                continue
            # The shared node merged in, plus exactly the service's own token.
            assert isinstance(environment, yaml.MappingNode), f"{name}-{role}"
            merged = [v for k, v in environment.value if k.value == "<<"]
            assert len(merged) == 1 and merged[0] is shared, f"{name}-{role}"
            assert {k.value for k, _ in environment.value if k.value != "<<"} == own, f"{name}-{role}"
    assert isinstance(shared, yaml.MappingNode)
    assert not [k.value for k, _ in shared.value if "SIGNING" in k.value or k.value.endswith("_SYNC_TOKEN")]


@pytest.mark.parametrize("name", SERVICES)
def test_env_anchor_gives_each_service_its_own_database(compose: dict[str, Any], name: str) -> None:
    values = {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p"}
    url = urlsplit(interpolate(compose["x-koppel-env"][f"KOPPEL_{name.upper()}_DATABASE_URL"], values))
    assert (url.scheme, url.username, url.password, url.hostname, url.port) == ("postgresql+asyncpg", "u", "p",
                                                                               "postgres", 5432)  # fmt: skip
    assert url.path == f"/koppel_{name}"


def test_secrets_must_be_set_and_are_not_defaulted(compose: dict[str, Any]) -> None:
    anchor = compose["x-koppel-env"]
    services = compose["services"]
    required = {
        "KOPPEL_TOKEN_PUBLIC_KEYS": anchor["KOPPEL_TOKEN_PUBLIC_KEYS"],
        "KOPPEL_ENCRYPTION_KEYS": anchor["KOPPEL_ENCRYPTION_KEYS"],
        "POSTGRES_PASSWORD": services["postgres"]["environment"]["POSTGRES_PASSWORD"],
        "RABBITMQ_PASSWORD": services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"],
    }
    for caller in SYNC_CALLERS:  # each only in its own service's containers
        token = f"KOPPEL_{caller.upper()}_SYNC_TOKEN"
        required[token] = services[f"{caller}-api"]["environment"][token]
    for role in ROLES:  # sync-svc's signing key, in sync-svc's containers only
        required[f"KOPPEL_SYNC_TOKEN_SIGNING_KEY {role}"] = services[f"sync-{role}"]["environment"][
            "KOPPEL_SYNC_TOKEN_SIGNING_KEY"
        ]
    for name, value in required.items():
        variable = name.split(" ")[0]
        # Compose refuses to start when it is unset or empty, and passes it unchanged when set.
        for missing in ({}, {variable: ""}):
            with pytest.raises(KeyError, match=variable):
                interpolate(value, missing)
        assert interpolate(value, {variable: "s3cret"}) == "s3cret", variable
    # Forgetting KOPPEL_ENVIRONMENT must not switch off the placeholder-secret check.
    assert interpolate(anchor["KOPPEL_ENVIRONMENT"], {}) == "prod"
    assert interpolate(anchor["KOPPEL_ENVIRONMENT"], {"KOPPEL_ENVIRONMENT": "dev"}) == "dev"


def test_env_example_documents_every_variable_compose_reads(compose: dict[str, Any]) -> None:
    variables = compose_variables(compose)
    values, commented = read_dotenv(ROOT / ".env.example")
    undocumented = sorted(set(variables) - values.keys() - commented)
    assert undocumented == []
    required_but_commented = sorted(n for n, op in variables.items() if op in (":?", None) and n not in values)
    assert required_but_commented == []
    assert "DEV" in (ROOT / ".env.example").read_text()


def _compose_env_for_services(compose: dict[str, Any], name: str, **overrides: str) -> dict[str, str]:
    values, _ = read_dotenv(ROOT / ".env.example")
    values.update(overrides)
    environment = compose["services"][f"{name}-worker"]["environment"]
    return {key: interpolate(str(value), values) for key, value in environment.items()}


def _settings_class(name: str) -> Any:
    return importlib.import_module(f"{name}_svc.settings").Settings


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("KOPPEL_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.mark.parametrize("name", SERVICES)
def test_compose_environment_with_env_example_configures_the_service(
    compose: dict[str, Any], clean_environ: pytest.MonkeyPatch, name: str
) -> None:
    for key, value in _compose_env_for_services(compose, name).items():
        clean_environ.setenv(key, value)
    settings = _settings_class(name)()
    values, _ = read_dotenv(ROOT / ".env.example")
    assert settings.database_url == (
        f"postgresql+asyncpg://{values['POSTGRES_USER']}:{values['POSTGRES_PASSWORD']}@postgres:5432/koppel_{name}"
    )
    assert settings.amqp_url.get_secret_value().endswith("@rabbitmq:5672/")
    assert settings.queue_type == "quorum"
    assert settings.environment == "dev"
    assert settings.log_json is True


@pytest.mark.parametrize("name", SERVICES)
def test_env_example_dev_secrets_are_refused_outside_dev(
    compose: dict[str, Any], clean_environ: pytest.MonkeyPatch, name: str
) -> None:
    for key, value in _compose_env_for_services(compose, name, KOPPEL_ENVIRONMENT="prod").items():
        clean_environ.setenv(key, value)
    with pytest.raises(ValidationError, match="token_public_keys") as refused:
        _settings_class(name)()
    if name in SYNC_CALLERS:
        assert "sync_token" in str(refused.value)
    if name == "sync":
        assert "token_signing_key" in str(refused.value)


# ---- Dockerfiles --------------------------------------------------------------------------------
def _dockerfiles(compose: dict[str, Any]) -> dict[str, Dockerfile]:
    """Every built compose service's Dockerfile, read with the build arguments compose passes."""
    return {
        name: Dockerfile(ROOT / svc["build"]["context"] / svc["build"]["dockerfile"], svc["build"].get("args"))
        for name, svc in built_services(compose).items()
    }


def test_every_dockerfile_compose_references_exists(compose: dict[str, Any]) -> None:
    paths = {svc["build"]["dockerfile"] for svc in built_services(compose).values()}
    expected = {SERVICE_DOCKERFILE, "console/Dockerfile"} | {f"{d}/Dockerfile" for d in SANDBOXES.values()}
    assert paths == expected
    for path in paths:
        assert (ROOT / path).is_file(), path
    # The five services have no Dockerfiles of their own any more.
    assert not [n for n in SERVICES if (ROOT / "services" / f"{n}-svc" / "Dockerfile").exists()]


def test_the_service_dockerfile_refuses_a_build_without_a_known_service() -> None:
    """The guard the builder stage runs first, run by a real shell with each SERVICE value."""
    dockerfile = Dockerfile(ROOT / SERVICE_DOCKERFILE, {"SERVICE": "mandate"})
    assert "SERVICE" not in dockerfile.global_args(), "no default service"
    builder = [i for i in dockerfile.instructions if i.stage == 2 and i.keyword != "FROM"]
    assert builder[0].keyword == "ARG" and builder[0].value == "SERVICE"
    guard = builder[1]
    assert guard.keyword == "RUN"

    def build_with(value: str | None) -> int:
        env = {"PATH": os.environ["PATH"], **({"SERVICE": value} if value is not None else {})}
        return subprocess.run(["sh", "-c", guard.value], env=env, capture_output=True).returncode

    assert [build_with(n) for n in SERVICES] == [0] * len(SERVICES)
    for wrong in (None, "", "console", "mandate-svc", "twikey"):
        assert build_with(wrong) != 0, wrong


def test_dockerfile_copies_read_existing_unignored_sources_into_the_same_layout(compose: dict[str, Any]) -> None:
    for dockerfile in _dockerfiles(compose).values():
        workdirs = {i.value for i in dockerfile.all("WORKDIR")}
        assert workdirs == {"/app"}, dockerfile.path
        for sources, dest in dockerfile.context_copies():
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"{dockerfile.path}: COPY {source} does not exist"
                assert not is_dockerignored(source), f"{dockerfile.path}: COPY {source} is in .dockerignore"
                if path.is_dir():
                    # The same relative path under /app, so paths computed from __file__ hold.
                    assert dest.rstrip("/") == source.rstrip("/"), f"{dockerfile.path}: COPY {source} {dest}"
                    for inner in ("pyproject.toml", "src", "migrations", "migrations/env.py", "alembic.ini"):
                        if (path / inner).exists():
                            assert not is_dockerignored(f"{source.rstrip('/')}/{inner}"), (dockerfile.path, inner)
                else:
                    assert dest in ("./", "/app/", source), f"{dockerfile.path}: COPY {source} {dest}"


def test_dockerignore_keeps_tests_local_state_and_secrets_out() -> None:
    for path in (".git/HEAD", ".venv/bin/python", "tests/deploy/x.py", "services/mandate-svc/tests/unit/a.py",
                 "shared/src/koppel_shared/__pycache__/a.pyc", ".env", ".env.local",
                 "testkit/src/koppel_testkit/chaos.py"):  # fmt: skip
        assert is_dockerignored(path), path
    for path in ("uv.lock", "pyproject.toml", "shared/src/koppel_shared/settings.py", "services/sync-svc/alembic.ini"):
        assert not is_dockerignored(path), path


def test_no_image_and_not_the_koppel_command_ships_the_test_kit(compose: dict[str, Any]) -> None:
    members = workspace_members()
    assert "koppel-testkit" in members
    shipped = {"koppel-cli"} | {_installed_package(d) for d in _dockerfiles(compose).values()}
    for package in shipped:
        assert "koppel-testkit" not in workspace_closure(package, members), package


def _heads(run: Instruction) -> list[list[str]]:
    return [c[:2] for c in run.commands()]


def _uv_syncs(dockerfile: Dockerfile) -> list[list[str]]:
    return [c for c in dockerfile.commands() if c[:2] == ["uv", "sync"]]


def _installed_package(dockerfile: Dockerfile) -> str:
    packages = {c[c.index("--package") + 1] for c in _uv_syncs(dockerfile) if "--package" in c}
    assert len(packages) == 1, (dockerfile.path, packages)
    return packages.pop()


@pytest.mark.parametrize("service", [f"{n}-api" for n in SERVICES] + list(SANDBOXES))
def test_dockerfile_installs_only_its_package_and_workspace_deps_from_the_lock(
    compose: dict[str, Any], service: str
) -> None:
    dockerfile = _dockerfiles(compose)[service]
    members = workspace_members()
    package = _installed_package(dockerfile)
    if service in SANDBOXES:
        assert members[package] == ROOT / SANDBOXES[service], package
    else:
        assert package == f"koppel-{service.removesuffix('-api')}-svc"
    closure = workspace_closure(package, members)

    syncs = _uv_syncs(dockerfile)
    assert len(syncs) == 2, dockerfile.path  # dependencies layer, then the workspace packages
    for sync in syncs:
        assert {"--frozen", "--no-dev"} <= set(sync), sync
        assert "--no-editable" not in sync  # editable keeps migrations/ next to src/
    assert "--no-install-workspace" in syncs[0]
    assert "--no-install-workspace" not in syncs[1]

    copied = {src.rstrip("/") for sources, _ in dockerfile.context_copies() for src in sources}
    assert {"pyproject.toml", "uv.lock"} <= copied
    member_dirs = {str(members[name].relative_to(ROOT)) for name in closure}
    assert copied - {"pyproject.toml", "uv.lock"} == member_dirs, dockerfile.path
    # The workspace sources come after the dependencies layer, so that layer survives code changes.
    steps = dockerfile.instructions
    dependencies = next(n for n, i in enumerate(steps) if i.keyword == "RUN" and ["uv", "sync"] in _heads(i))
    sources = [
        n for n, i in enumerate(steps) if i.keyword == "COPY" and "--from" not in i.value and "uv.lock" not in i.value
    ]
    assert sources and min(sources) > dependencies, dockerfile.path


@pytest.mark.parametrize("service", [f"{n}-api" for n in SERVICES] + list(SANDBOXES))
def test_dockerfile_runtime_stage(compose: dict[str, Any], service: str) -> None:
    dockerfile = _dockerfiles(compose)[service]
    args = dockerfile.global_args()
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert args["UV_IMAGE"].startswith("ghcr.io/astral-sh/uv:")
    bases = dockerfile.parser.parent_images  # FROM lines, build arguments resolved
    assert len(bases) >= 3, "multi-stage: uv, builder, runtime"
    assert bases[0] == args["UV_IMAGE"] and bases[-1] == args["PYTHON_IMAGE"]
    assert ("uv", ["/uv", "/uvx"], "/bin/") in dockerfile.stage_copies()

    runtime = dockerfile.last_stage()
    user = dockerfile.final("USER").value
    assert user not in ("root", "0"), "runs as a non-root user"
    created = [c for i in runtime if i.keyword == "RUN" for c in i.commands() if c[0] == "useradd"]
    assert created and created[0][-1] == user and "--system" in created[0]
    env = dockerfile.parser.envs
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == f"/app/.venv/bin:{BASE_ENV['PATH']}"  # the venv first, the base image's PATH kept
    assert [(s, src, dest) for s, src, dest in dockerfile.stage_copies() if s == "builder"] == [
        ("builder", ["/app"], "/app")
    ]
    assert dockerfile.final("WORKDIR").value == "/app"

    process = dockerfile.process()
    command = process[3:]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert str(port) in dockerfile.final("EXPOSE").value.split()
    probe = dockerfile.healthcheck()
    assert probe[:2] == ["python", "-c"]
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", probe[2])
    assert [u[0] for u in urls] == [port], probe
    if service.endswith("-api"):
        name = service.removesuffix("-api")
        assert process == ["python", "-m", f"{name}_svc", *COMMANDS["api"]]
        assert compose["services"][service]["command"] == command
        assert urls[0][1] == "/healthz"


def test_every_python_module_compose_runs_is_importable(compose: dict[str, Any]) -> None:
    modules = {}
    for name, dockerfile in _dockerfiles(compose).items():
        modules[name] = module_of(dockerfile)
    for name, svc in compose["services"].items():
        words = [*svc.get("entrypoint", []), *(svc.get("command") or [])]
        if isinstance(svc.get("command"), str):
            words = shlex.split(svc["command"])
        for i, word in enumerate(words[:-1]):
            if word == "-m":
                modules[f"{name} (command)"] = words[i + 1]
    for where, module in modules.items():
        assert importlib.util.find_spec(module) is not None, f"{where}: {module}"
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{where}: {module}.__main__"


@pytest.mark.parametrize("name", SERVICES)
def test_service_code_finds_its_migrations_next_to_the_copied_source(name: str) -> None:
    """bootstrap.py computes migrations/ from its own path; with the editable install the image
    uses, that is services/<name>-svc/migrations, which the Dockerfile copies."""
    service_dir = ROOT / "services" / f"{name}-svc"
    bootstrap = importlib.import_module(f"{name}_svc.bootstrap")
    assert bootstrap.__file__ and Path(bootstrap.__file__).resolve().is_relative_to(service_dir / "src")
    migrations = Path(bootstrap.definition.migrations_dir).resolve()
    assert migrations == service_dir / "migrations"
    assert (migrations / "env.py").is_file() and (service_dir / "alembic.ini").is_file()


# ---- gateway --------------------------------------------------------------------------------------
SAMPLE_VALUES = {
    "GATEWAY_LISTEN": "8080",
    "NGINX_LOCAL_RESOLVERS": "127.0.0.11 ",
    **{f"{name.upper()}_UPSTREAM": f"{name}-api:8000" for name in SERVICES},
    "CONSOLE_UPSTREAM": "console:8000",
}


def test_compose_gateway_provides_every_template_value_through_the_filter(
    compose: dict[str, Any], gateway_render: ModuleType, template_text: str
) -> None:
    gateway = compose["services"]["gateway"]
    assert "./deploy/gateway/nginx.conf.template:/etc/nginx/templates/default.conf.template:ro" in gateway["volumes"]
    env = gateway["environment"]
    assert env["NGINX_ENTRYPOINT_LOCAL_RESOLVERS"]  # makes the image export NGINX_LOCAL_RESOLVERS
    name_filter = env["NGINX_ENVSUBST_FILTER"].replace("$$", "$")
    assert name_filter == gateway_render.DEFAULT_FILTER
    provided = set(env) | {"NGINX_LOCAL_RESOLVERS"}
    for name in gateway_render.template_names(template_text):
        assert name in provided, name
        assert re.search(name_filter, name), f"{name} does not pass NGINX_ENVSUBST_FILTER"
    for name in SERVICES:
        assert env[f"{name.upper()}_UPSTREAM"] == f"{name}-api:8000"
        assert COMMANDS["api"][-1] == "8000"
    assert env["GATEWAY_LISTEN"] == "8080"


# A small reader of nginx configuration: enough to find server-level `set`s and locations.
@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None


def parse_nginx(text: str) -> list[Directive]:
    tokens = re.findall(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|#[^\n]*|[{};]|[^\s{};\"'#]+", text)
    tokens = [t for t in tokens if not t.startswith("#")]
    pos = 0

    def block() -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        words: list[str] = []
        while pos < len(tokens):
            token = tokens[pos]
            pos += 1
            if token == ";":
                out.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                out.append(Directive(words[0], words[1:], block()))
                words = []
            elif token == "}":
                return out
            else:
                words.append(token[1:-1] if token[:1] in "\"'" else token)
        return out

    return block()


def select_location(server: list[Directive], uri: str) -> Directive | None:
    """nginx's choice without regex locations: an exact match, else the longest prefix."""
    path = uri.split("?", 1)[0]
    locations = [d for d in server if d.name == "location" and not d.args[0].startswith("@")]
    for loc in locations:
        if loc.args[0] == "=" and loc.args[1] == path:
            return loc
    prefixes = [loc for loc in locations if loc.args[0] != "=" and path.startswith(loc.args[-1])]
    return max(prefixes, key=lambda loc: len(loc.args[-1]), default=None)


def rendered_server(gateway_render: ModuleType, template_text: str) -> list[Directive]:
    config = parse_nginx(gateway_render.render(template_text, SAMPLE_VALUES))
    servers = [d for d in config if d.name == "server"]
    assert len(servers) == 1
    assert servers[0].block is not None
    return servers[0].block


def test_gateway_routes_every_prefix_to_its_service(gateway_render: ModuleType, template_text: str) -> None:
    server = rendered_server(gateway_render, template_text)
    variables = {d.args[0]: d.args[1] for d in server if d.name == "set"}
    locations = [d for d in server if d.name == "location"]
    assert not [loc for loc in locations if loc.args[0] in ("~", "~*")], "regex locations defeat this check"
    for uri, (service, upstream_path) in ROUTES.items():
        location = select_location(server, uri)
        assert location is not None and location.block is not None, uri
        proxy_pass = next(d.args[0] for d in location.block if d.name == "proxy_pass")
        m = re.fullmatch(r"http://(\$\w+)(/.*)?", proxy_pass)
        assert m, proxy_pass
        assert variables[m.group(1)] == SAMPLE_VALUES[f"{service.upper()}_UPSTREAM"], uri
        if upstream_path == "/openapi.json":
            assert m.group(2) == "/openapi.json", uri
        else:
            assert m.group(2) is None, f"{uri}: the request URI must pass unchanged"
    for uri in NOT_ROUTED:
        location = select_location(server, uri)
        assert location is not None and location.args == ["/"], uri


def test_gateway_has_the_required_server_settings(gateway_render: ModuleType, template_text: str) -> None:
    server = rendered_server(gateway_render, template_text)
    settings = {d.name: d.args for d in server if d.block is None}
    assert settings["client_max_body_size"] == ["1m"]
    assert settings["listen"] == ["8080"]
    assert settings["access_log"] == ["/dev/stdout", "koppel_json"]
    for timeout in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        assert timeout in settings
    assert ["X-Request-ID", "$koppel_request_id"] in [d.args for d in server if d.name == "proxy_set_header"]
    webhooks = select_location(server, "/webhooks/twikey/x")
    assert webhooks is not None and webhooks.block is not None
    limit = next(d.args for d in webhooks.block if d.name == "limit_req")
    assert limit[0] == "zone=twikey_webhooks" and any(a.startswith("burst=") for a in limit)
    healthz = select_location(server, "/healthz")
    assert healthz is not None and healthz.args == ["=", "/healthz"] and healthz.block is not None
    assert any(d.name == "return" and d.args[0] == "200" for d in healthz.block)


# ---- gateway under a real nginx -------------------------------------------------------------------
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install -y nginx); the static routing checks still ran"
)


def _standalone(gateway_render: ModuleType, template_text: str, prefix: Path, values: dict[str, str]) -> Path:
    user = "root" if os.geteuid() == 0 else None  # workers as root can use temp dirs under a 0700 tmp
    return gateway_render.write_standalone(prefix, values, template_text, user=user)


@needs_nginx
def test_rendered_gateway_config_passes_nginx_t(gateway_render: ModuleType, template_text: str, tmp_path: Path) -> None:
    conf = _standalone(gateway_render, template_text, tmp_path, SAMPLE_VALUES)
    result = subprocess.run(
        [str(NGINX), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class _Stub(BaseHTTPRequestHandler):
    """An upstream that answers with what it received."""

    service = "?"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {
                "service": self.service,
                "path": self.path,
                "request_id": self.headers.get("X-Request-ID"),
                "forwarded_for": self.headers.get("X-Forwarded-For"),
                "body_bytes": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-ID", "upstream-echo")  # the gateway must show only its own
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _stubs(names: list[str]) -> Iterator[dict[str, ThreadingHTTPServer]]:
    servers = {}
    try:
        for name in names:
            handler = type(f"Stub_{name}", (_Stub,), {"service": name})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers[name] = server
        yield servers
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


@contextlib.contextmanager
def _nginx(conf: Path, prefix: Path, port: int) -> Iterator[Path]:
    access_log = prefix / "stdout.log"
    with access_log.open("wb") as out:
        process = subprocess.Popen(
            [str(NGINX), "-p", str(prefix), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    if _request(port, "GET", "/healthz").status == 200:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"nginx did not start: {stderr}")
                time.sleep(0.05)
            yield access_log
        finally:
            process.terminate()
            process.wait(timeout=10)


@needs_nginx
def test_gateway_behaviour_under_nginx(gateway_render: ModuleType, template_text: str, tmp_path: Path) -> None:
    names = [*SERVICES, "console"]
    with _stubs(names) as stubs:
        port = _free_port()
        values = {
            "GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "NGINX_LOCAL_RESOLVERS": "127.0.0.1",
            **{f"{n.upper()}_UPSTREAM": f"127.0.0.1:{s.server_address[1]}" for n, s in stubs.items()},
        }
        conf = _standalone(gateway_render, template_text, tmp_path, values)
        with _nginx(conf, tmp_path, port) as access_log:
            health = _request(port, "GET", "/healthz")
            assert (health.status, health.json()) == (200, {"status": "ok"})

            # Every public prefix reaches its service, with the URI it expects.
            for uri, (service, upstream_path) in ROUTES.items():
                answer = _request(port, "GET", uri)
                assert answer.status == 200, uri
                assert (answer.json()["service"], answer.json()["path"]) == (service, upstream_path), uri
                assert answer.json()["forwarded_for"] == "127.0.0.1"

            # Nothing else is exposed (not the services' /metrics either).
            for uri in NOT_ROUTED:
                answer = _request(port, "GET", uri)
                assert answer.status == 404, uri
                assert answer.headers["Content-Type"] == "application/problem+json"
                assert answer.json()["code"] == "route_not_found"

            # Request ids: the caller's is passed on and echoed once; otherwise the gateway makes one.
            answer = _request(port, "GET", "/v1/mandates", headers={"X-Request-ID": "erp-req-42"})
            assert answer.json()["request_id"] == "erp-req-42"
            assert answer.headers.get_all("X-Request-ID") == ["erp-req-42"]
            for sent in ({}, {"X-Request-ID": 'bad id "with" spaces'}):
                answer = _request(port, "GET", "/v1/invoices", headers=sent)
                generated = answer.json()["request_id"]
                assert re.fullmatch(r"[0-9a-f]{32}", generated), sent
                assert answer.headers.get_all("X-Request-ID") == [generated]

            # Bodies: up to 1 MiB passes, more is refused before it reaches a service.
            answer = _request(port, "POST", "/v1/invoices", body=b"x" * 900_000)
            assert (answer.status, answer.json()["body_bytes"]) == (200, 900_000)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.putrequest("POST", "/v1/invoices")
            conn.putheader("Content-Length", str(2 * 1024 * 1024))
            conn.endheaders()
            too_large = conn.getresponse()
            assert too_large.status == 413
            assert json.loads(too_large.read())["code"] == "request_too_large"
            conn.close()

            # The JSON access log names the request id and the service.
            lines = [json.loads(line) for line in access_log.read_text().splitlines() if line.strip()]
            mine = [line for line in lines if line["request_id"] == "erp-req-42"]
            assert mine and mine[0]["service"] == "mandate" and mine[0]["status"] == 200
            assert mine[0]["uri"] == "/v1/mandates"

            # A webhook flood is cut off with 429 (burst, then the rate).
            statuses = []
            for _ in range(2000):
                answer = _request(port, "POST", "/webhooks/twikey/t1", body=b"{}")
                statuses.append(answer.status)
                if answer.status == 429:
                    assert answer.json()["code"] == "rate_limited"
                    assert answer.headers["Retry-After"] == "1"
                    if statuses.count(429) >= 5:
                        break
            assert statuses[0] == 200 and 429 in statuses
            # The limit is per tenant: another tenant's webhooks still get through.
            assert _request(port, "POST", "/webhooks/twikey/t2", body=b"{}").status == 200
            assert set(statuses) == {200, 429}
            # The rate limit is only on the webhooks.
            assert _request(port, "GET", "/v1/mandates").status == 200

            # An unreachable service: a problem+json 502, not nginx's HTML page.
            stubs["notify"].shutdown()
            stubs["notify"].server_close()
            answer = _request(port, "GET", "/v1/events")
            assert answer.status == 502
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert answer.json()["code"] == "upstream_unavailable"
