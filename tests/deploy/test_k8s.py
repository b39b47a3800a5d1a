"""The Kubernetes manifests (deploy/k8s), checked offline: built with the real kustomize (kubectl's),
every core object validated against Kubernetes' own schemas (kubernetes-validate), the operators'
objects against their CRDs' schemas (tests/deploy/schemas), and what they mean checked against the
code: the settings the services read, the queues they consume, the benchmark's memory figures,
and who may reach whom under the NetworkPolicies."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from koppel_shared.auth import SigningKey, issue_service_token, issue_token, verify_token

from .conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
SERVICES = ("mandate", "collection", "sync", "bookkeeping", "notify")
# The operators' signing key in these tests; the manifests carry only its public key.
K8S_KEY = SigningKey.generate("k8s")
K8S_SYNC_KEY = SigningKey.generate("k8s-sync")  # sync-svc's own (the tokens made from the browser)
# The oldest Kubernetes still served by the big providers, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
CRD_SCHEMAS = {
    "RabbitmqCluster": "rabbitmqcluster.json",
    "Cluster": "cnpg-cluster.json",
    "ScaledObject": "keda.json",
    "TriggerAuthentication": "keda.json",
}


def _kustomize_command() -> list[str] | None:
    """kubectl's built-in kustomize, if it is v5 (the `patches` field with label selectors)."""
    if shutil.which("kubectl") is None:
        return None
    done = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60)
    version = json.loads(done.stdout or "{}").get("kustomizeVersion", "")
    return ["kubectl", "kustomize"] if re.match(r"v([5-9]|\d\d)", version) else None


KUSTOMIZE = _kustomize_command()
needs_kustomize = pytest.mark.skipif(
    KUSTOMIZE is None,
    reason="needs kubectl with kustomize v5; Debian's kubernetes-client package (1.20) is older, so it "
    "cannot be installed from this machine's registries",
)


def build(overlay: str) -> list[dict[str, Any]]:
    assert KUSTOMIZE is not None
    done = subprocess.run([*KUSTOMIZE, str(K8S / overlay)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module", params=["base", "overlays/local"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    if KUSTOMIZE is None:
        pytest.skip(needs_kustomize.kwargs["reason"])
    return build(request.param)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    if KUSTOMIZE is None:
        pytest.skip(needs_kustomize.kwargs["reason"])
    return build("base")


@pytest.fixture(scope="module")
def local() -> list[dict[str, Any]]:
    if KUSTOMIZE is None:
        pytest.skip(needs_kustomize.kwargs["reason"])
    return build("overlays/local")


def generator() -> ModuleType:
    return load_script("koppel_k8s_generate", K8S / "generate.py")


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d, d["spec"]["template"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


# ---- the files ---------------------------------------------------------------------------------
def test_the_generated_base_files_are_what_the_generator_writes() -> None:
    gen = generator()
    for name, documents in gen.files().items():
        assert (gen.BASE / name).read_text() == gen.render(documents), f"{name}: run python deploy/k8s/generate.py"


@needs_kustomize
def test_every_object_validates_against_kubernetes_and_its_crd(rendered: list[dict[str, Any]]) -> None:
    problems = []
    for doc in rendered:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CRD_SCHEMAS:
            schema = json.loads((SCHEMAS / CRD_SCHEMAS[doc["kind"]]).read_text())
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
            problems += [f"{where}: {e.message}" for e in errors]
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{where} (Kubernetes {version}): {exc.message}")
    assert not problems, "\n".join(problems)


def test_the_validators_refuse_a_wrong_field() -> None:
    """The checks above can fail: a misspelt field is refused by both kinds of schema."""
    gen = generator()
    deployment = gen.files()["mandate.yaml"][1]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)
    scaled = json.loads(json.dumps(gen.files()["mandate.yaml"][-1]))
    scaled["spec"]["triggers"][0]["metadata"]["queue"] = "mandate.twikey"
    schema = json.loads((SCHEMAS / "keda.json").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(scaled))


# ---- what they mean ----------------------------------------------------------------------------
@needs_kustomize
def test_each_service_has_migrate_api_worker_budgets_and_autoscalers(base: list[dict[str, Any]]) -> None:
    for s in SERVICES:
        job = find(base, "Job", f"{s}-migrate")
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
        for kind, name in [
            ("Deployment", f"{s}-api"),
            ("Service", f"{s}-api"),
            ("Deployment", f"{s}-worker"),
            ("PodDisruptionBudget", f"{s}-api"),
            ("PodDisruptionBudget", f"{s}-worker"),
            ("HorizontalPodAutoscaler", f"{s}-api"),
            ("ScaledObject", f"{s}-worker"),
        ]:
            find(base, kind, name)
        api = find(base, "Deployment", f"{s}-api")["spec"]["template"]["spec"]["containers"][0]
        assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


@needs_kustomize
def test_apis_and_workers_wait_for_the_schema_with_their_own_image_and_environment(base: list[dict[str, Any]]) -> None:
    for s in SERVICES:
        for part in ("api", "worker"):
            pod = find(base, "Deployment", f"{s}-{part}")["spec"]["template"]["spec"]
            (init,) = pod["initContainers"]
            main = pod["containers"][0]
            assert init["args"][0] == "wait-migrated"
            assert (init["image"], init["env"]) == (main["image"], main["env"])


@needs_kustomize
def test_every_reference_resolves(rendered: list[dict[str, Any]]) -> None:
    pods = [(d, t) for d, t in pod_templates(rendered)]
    names = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for svc in (d for d in rendered if d["kind"] == "Service"):
        targets = [
            t
            for d, t in pods
            if d["kind"] == "Deployment" and matches({"matchLabels": svc["spec"]["selector"]}, t["metadata"]["labels"])
        ]
        assert len(targets) == 1, f"Service/{svc['metadata']['name']} selects {len(targets)} Deployments"
        ports = {p["name"] for c in targets[0]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    for doc in rendered:
        kind, spec = doc["kind"], doc.get("spec", {})
        if kind == "PodDisruptionBudget":
            assert any(
                d["kind"] == "Deployment" and matches(spec["selector"], t["metadata"]["labels"]) for d, t in pods
            )
        if kind == "HorizontalPodAutoscaler":
            assert ("Deployment", spec["scaleTargetRef"]["name"]) in names
        if kind == "ScaledObject":
            assert ("Deployment", spec["scaleTargetRef"]["name"]) in names
            for trigger in spec["triggers"]:
                assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in names
    for _, template in pods:
        for c in containers(template):
            for source in c.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names


@needs_kustomize
def test_no_secret_is_written_in_the_manifests_and_each_one_used_is_documented(rendered: list[dict[str, Any]]) -> None:
    assert not [d for d in rendered if d["kind"] == "Secret"]
    sensitive = re.compile(r"SECRET|PASSWORD|KEY|AMQP_URL")
    used = set()
    for _, template in pod_templates(rendered):
        for c in containers(template):
            for env in c.get("env", []):
                if sensitive.search(env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{c['name']}: {env['name']} is not from a Secret"
                    )
                if "secretKeyRef" in env.get("valueFrom", {}):
                    used.add(env["valueFrom"]["secretKeyRef"]["name"])
    for doc in rendered:
        for ref in doc.get("spec", {}).get("secretTargetRef", []):
            used.add(ref["name"])
        for role in doc.get("spec", {}).get("managed", {}).get("roles", []):
            used.add(role["passwordSecret"]["name"])
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert {"koppel-secrets", "koppel-postgres-credentials", "koppel-rabbitmq-default-user"} <= used
    assert not [name for name in used if name not in readme], "every Secret the manifests use is explained"


def _fake_secret(name: str, key: str) -> str:
    if key == "token-public-keys":
        return f"{K8S_KEY.public_entry()},{K8S_SYNC_KEY.public_entry()},{SigningKey.generate('next').public_entry()}"
    if key == "sync-token-signing-key":
        return K8S_SYNC_KEY.encoded()
    if key.endswith("-sync-token"):
        return issue_service_token(K8S_KEY, key.removesuffix("-sync-token"))
    if key == "encryption-keys":
        return Fernet.generate_key().decode()
    if key == "connection_string":
        return "amqp://koppel:s3cret@koppel-rabbitmq.koppel.svc:5672/"
    return f"{name}-{key}-" + "x" * 40


@needs_kustomize
def test_the_services_read_their_settings_from_what_the_manifests_set(
    base: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = find(base, "ConfigMap", "koppel-config")["data"]
    for s in SERVICES:
        container = find(base, "Deployment", f"{s}-worker")["spec"]["template"]["spec"]["containers"][0]
        env = dict(config)
        for item in container["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            env[item["name"]] = _fake_secret(ref["name"], ref["key"]) if ref else item["value"]
        for name in list(__import__("os").environ):
            if name.startswith("KOPPEL_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = importlib.import_module(f"{s}_svc.bootstrap").definition.settings_cls()
        assert settings.environment == "prod"
        assert settings.database_url == f"postgresql+asyncpg://koppel-postgres-rw:5432/koppel_{s}"
        assert settings.amqp_url.get_secret_value() == env["KOPPEL_AMQP_URL"]
        assert settings.queue_type == "quorum"
        assert settings.token_public_keys == env["KOPPEL_TOKEN_PUBLIC_KEYS"]
        if s == "sync":  # the one service with a signing key: its own, from the Secret
            assert settings.signing_key.kid == K8S_SYNC_KEY.kid
            issued = issue_token(settings.signing_key, uuid.uuid4(), ["operator"])
            assert verify_token(settings.public_keys, issued).has("operator")
        else:
            assert "token_signing_key" not in type(settings).model_fields
        if s in ("mandate", "bookkeeping"):
            token = settings.sync_token.get_secret_value()
            assert verify_token(settings.public_keys, token, acting_for=uuid.uuid4()).subject == f"service:{s}"
        else:
            assert not [k for k in env if k.endswith("_SYNC_TOKEN")], s


def _queues_in_code(service: str) -> set[str]:
    definition = importlib.import_module(f"{service}_svc.bootstrap").definition
    settings = definition.settings_cls(environment="dev")
    runtime = SimpleNamespace(settings=settings, service=service, extras={})
    return {f"{service}.{spec.purpose}" for spec in definition.consumers(runtime)}


@needs_kustomize
def test_each_worker_scales_on_exactly_the_queues_its_service_consumes(base: list[dict[str, Any]]) -> None:
    for s in SERVICES:
        spec = find(base, "ScaledObject", f"{s}-worker")["spec"]
        assert {t["metadata"]["queueName"] for t in spec["triggers"]} == _queues_in_code(s)
        assert all(t["type"] == "rabbitmq" and t["metadata"]["mode"] == "QueueLength" for t in spec["triggers"])
        # The worker also runs loops no queue shows: it never scales to zero.
        assert spec["minReplicaCount"] >= 1


def _benchmark_rss_mb() -> dict[str, float]:
    text = (ROOT / "bench" / "results" / "latest.md").read_text()
    return {
        m[1]: float(m[2]) for m in re.finditer(r"\| rss_per_process_mb\.([\w-]+)\.load_max_mb \| ([\d.]+) \|", text)
    }


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * (1024 if unit == "Gi" else 1)


@needs_kustomize
def test_memory_requests_cover_what_the_benchmark_measured_and_python_gets_one_core(base: list[dict[str, Any]]) -> None:
    rss = _benchmark_rss_mb()
    process = {f"{s}-{p}": f"{s}-{p}" for s in SERVICES for p in ("api", "worker")} | {
        "console": "console",
        "gateway": "gateway",
    }
    assert set(process.values()) <= set(rss), "the benchmark measures every process"
    for name, measured in process.items():
        pod = find(base, "Deployment", name)["spec"]["template"]["spec"]
        for c in pod["containers"]:
            resources = c["resources"]
            assert _mebibytes(resources["requests"]["memory"]) >= rss[measured] * 1.2, name
            assert _mebibytes(resources["limits"]["memory"]) >= 2 * rss[measured], name
            assert resources["limits"]["cpu"] == "1", name


def _reachers(docs: list[dict[str, Any]], target: dict[str, str]) -> set[str] | None:
    """Which pods (by app.kubernetes.io/name) may open a connection to a pod with ``target``'s
    labels; None when anyone may (no policy isolates it, or a rule without `from`)."""
    policies = [p for p in docs if p["kind"] == "NetworkPolicy" and matches(p["spec"]["podSelector"], target)]
    if not policies:
        return None
    pods = [t["metadata"]["labels"] for d, t in pod_templates(docs) if d["kind"] == "Deployment"]
    allowed: set[str] = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                return None
            for source in rule["from"]:
                allowed |= {p["app.kubernetes.io/name"] for p in pods if matches(source["podSelector"], p)}
    return allowed


@needs_kustomize
def test_only_the_gateway_and_the_console_reach_the_apis(rendered: list[dict[str, Any]]) -> None:
    labels = {
        d["metadata"]["name"]: t["metadata"]["labels"] for d, t in pod_templates(rendered) if d["kind"] == "Deployment"
    }
    for s in SERVICES:
        expected = {"gateway", "console"}
        if s == "sync":
            expected |= {"mandate-api", "mandate-worker", "bookkeeping-api", "bookkeeping-worker"}
        assert _reachers(rendered, labels[f"{s}-api"]) == expected, s
        assert _reachers(rendered, labels[f"{s}-worker"]) == set(), f"{s}-worker takes no connections"
    assert _reachers(rendered, labels["console"]) == {"gateway"}
    assert _reachers(rendered, labels["gateway"]) is None


@needs_kustomize
def test_the_gateway_knows_every_upstream_of_its_template_by_a_service_that_exists(
    base: list[dict[str, Any]], template_text: str
) -> None:
    env = {
        e["name"]: e.get("value")
        for e in find(base, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    placeholders = set(re.findall(r"\$\{([A-Z_]+_UPSTREAM)\}", template_text))
    assert {k for k in env if k.endswith("_UPSTREAM")} == placeholders
    services = {d["metadata"]["name"]: d for d in base if d["kind"] == "Service"}
    for name in placeholders:
        host, port = env[name].rsplit(":", 1)
        assert host.endswith(".$(POD_NAMESPACE).svc.cluster.local"), "nginx's resolver needs the full name"
        service = services[host.split(".")[0]]
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    assert next(iter(env)) == "POD_NAMESPACE", "declared before the values that use it"


@needs_kustomize
def test_the_local_overlay_runs_one_of_everything_in_its_namespace(local: list[dict[str, Any]]) -> None:
    assert find(local, "RabbitmqCluster", "koppel-rabbitmq")["spec"]["replicas"] == 1
    assert find(local, "Cluster", "koppel-postgres")["spec"]["instances"] == 1
    for doc in local:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "koppel-local", f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Deployment":
            assert doc["spec"]["replicas"] == 1
        if doc["kind"] == "PodDisruptionBudget":
            assert "minAvailable" not in doc["spec"], "one replica with minAvailable 1 blocks every drain"
        if doc["kind"] == "HorizontalPodAutoscaler":
            assert doc["spec"]["minReplicas"] == 1
    images = {c["image"] for _, t in pod_templates(local) for c in containers(t)}
    assert {f"koppel/{s}-svc:dev" for s in SERVICES} | {
        "koppel/twikey-sandbox:dev",
        "koppel/twinfield-sandbox:dev",
    } <= images
