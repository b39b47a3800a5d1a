"""Writes Koppel's Kubernetes base (deploy/k8s/base/) from one table, so that the five services'
manifests cannot drift apart: `python deploy/k8s/generate.py` after changing the table; the deploy
tests fail when the files and this script disagree.

Sizes come from the end-to-end benchmark (bench/results/latest.md, 50 payments/s, 4 tenants, one
replica each): every Koppel process stays between 100 and 121 MiB RSS under load, so each asks for
160 MiB and may use twice that; CPU requests are the measured milliseconds of CPU per payment at
50 payments/s (notify-worker 7.3 ms → 364 m; sync-worker 6.3 → 315 m; bookkeeping-worker 3.5 →
175 m; collection-worker 2.3 → 117 m; the APIs and mandate-worker < 0.1 ms), rounded up. A Python
process runs on one core, so no container may use more than one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
BASE = HERE / "base"
PART_OF = "koppel"
PORT = 8000
# Workers also run loops that no queue shows (collection scheduler, booker, feed drains, delivery
# dispatcher): one replica always runs, KEDA adds more while a queue has a backlog.
WORKER_MIN = 1
QUEUE_BACKLOG_PER_REPLICA = "200"


@dataclass(frozen=True)
class Service:
    name: str
    queues: tuple[str, ...]  # the purposes of its consumers: queue <name>.<purpose>
    worker_cpu: str
    worker_max: int
    api_min: int = 2
    api_max: int = 6
    api_cpu: str = "100m"


SERVICES = (
    Service("mandate", ("system", "twikey"), worker_cpu="50m", worker_max=3),
    Service("collection", ("system", "mandates", "twikey"), worker_cpu="150m", worker_max=4),
    Service("sync", ("system", "commands"), worker_cpu="350m", worker_max=4),
    # Bookings are bound by Twinfield's credits (one budget in PostgreSQL for all replicas): more
    # than two workers only wait for that budget.
    Service("bookkeeping", ("system", "collections", "mandates"), worker_cpu="200m", worker_max=2),
    Service("notify", ("system", "public-events"), worker_cpu="400m", worker_max=4),
)

# The services that call sync-svc's internal API, each with a service token of its own.
SYNC_CALLERS = ("mandate", "bookkeeping")

MEMORY = {"requests": "160Mi", "limits": "320Mi"}
CPU_LIMIT = "1"


def labels(component: str, service: str | None = None) -> dict[str, str]:
    name = f"{service}-{component}" if service else component
    out = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": component,
    }
    if service:
        out["koppel.io/service"] = service
    return out


def selector(component: str, service: str | None = None) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"{service}-{component}" if service else component}


def security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _secret(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def operator_secrets(service: str) -> list[dict[str, Any]]:
    """What every Koppel process verifies and decrypts with, from the operators' Secret."""
    # Public keys only: no service holds the key that signs tokens (the `koppel` command does) ...
    env = [{"name": "KOPPEL_TOKEN_PUBLIC_KEYS", "valueFrom": _secret("koppel-secrets", "token-public-keys")}]
    if service == "sync":
        # ... but sync-svc, which signs the tokens made from the browser with a key of its own
        # (a kid apart from the command's; its public half is in token-public-keys).
        env.append(
            {
                "name": "KOPPEL_SYNC_TOKEN_SIGNING_KEY",
                "valueFrom": _secret("koppel-secrets", "sync-token-signing-key"),
            }
        )
    if service in SYNC_CALLERS:
        # The service token it calls sync-svc's internal API with (`koppel token service`).
        env.append(
            {
                "name": f"KOPPEL_{service.upper()}_SYNC_TOKEN",
                "valueFrom": _secret("koppel-secrets", f"{service}-sync-token"),
            }
        )
    env.append({"name": "KOPPEL_ENCRYPTION_KEYS", "valueFrom": _secret("koppel-secrets", "encryption-keys")})
    return env


def service_env(service: str) -> list[dict[str, Any]]:
    """Secrets are referenced, never written here: the operators' Secret (koppel-secrets), the
    credentials CloudNativePG uses for the koppel role, and the user the RabbitMQ operator makes."""
    return [
        *operator_secrets(service),
        {"name": "KOPPEL_AMQP_URL", "valueFrom": _secret("koppel-rabbitmq-default-user", "connection_string")},
        # libpq's own variables: asyncpg takes the user and password from them, so the URL below
        # carries none and a password needs no URL escaping.
        {"name": "PGUSER", "valueFrom": _secret("koppel-postgres-credentials", "username")},
        {"name": "PGPASSWORD", "valueFrom": _secret("koppel-postgres-credentials", "password")},
        {
            "name": f"KOPPEL_{service.upper()}_DATABASE_URL",
            "value": f"postgresql+asyncpg://koppel-postgres-rw:5432/koppel_{service}",
        },
    ]


def container(name: str, image: str, args: list[str], env: list[dict[str, Any]], cpu: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "args": args,
        "envFrom": [{"configMapRef": {"name": "koppel-config"}}],
        "env": env,
        "resources": {
            "requests": {"cpu": cpu, "memory": MEMORY["requests"]},
            "limits": {"cpu": CPU_LIMIT, "memory": MEMORY["limits"]},
        },
        "securityContext": security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def pod_spec(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    grace: int = 30,
    restart: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": grace,
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if init:
        spec["initContainers"] = init
    if restart:
        spec["restartPolicy"] = restart
    return spec


def http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def service_documents(s: Service) -> list[dict[str, Any]]:
    image = f"koppel/{s.name}-svc"
    env = service_env(s.name)
    wait = container("wait-migrated", image, ["wait-migrated", "--timeout", "600"], env, "50m")
    migrate = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{s.name}-migrate", "labels": labels("migrate", s.name)},
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels("migrate", s.name)},
                "spec": pod_spec([container("migrate", image, ["migrate"], env, "100m")], restart="OnFailure"),
            },
        },
    }
    api_container = container("api", image, ["api", "--host", "0.0.0.0", "--port", str(PORT)], env, s.api_cpu)
    api_container["ports"] = [{"name": "http", "containerPort": PORT}]
    api_container["readinessProbe"] = http_probe("/readyz", 5, 3)
    api_container["livenessProbe"] = http_probe("/healthz", 10, 6)
    api_container["startupProbe"] = http_probe("/healthz", 2, 30)
    api = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{s.name}-api", "labels": labels("api", s.name)},
        "spec": {
            "replicas": s.api_min,
            "selector": {"matchLabels": selector("api", s.name)},
            "template": {"metadata": {"labels": labels("api", s.name)}, "spec": pod_spec([api_container], [wait])},
        },
    }
    api_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{s.name}-api", "labels": labels("api", s.name)},
        "spec": {"selector": selector("api", s.name), "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
    }
    # The worker finishes its in-flight messages on SIGTERM; the grace period gives it the time.
    worker = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{s.name}-worker", "labels": labels("worker", s.name)},
        "spec": {
            "replicas": WORKER_MIN,
            "selector": {"matchLabels": selector("worker", s.name)},
            "template": {
                "metadata": {"labels": labels("worker", s.name)},
                "spec": pod_spec([container("worker", image, ["worker"], env, s.worker_cpu)], [wait], grace=60),
            },
        },
    }
    api_pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"{s.name}-api", "labels": labels("api", s.name)},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector("api", s.name)}},
    }
    worker_pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"{s.name}-worker", "labels": labels("worker", s.name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("worker", s.name)}},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{s.name}-api", "labels": labels("api", s.name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{s.name}-api"},
            "minReplicas": s.api_min,
            "maxReplicas": s.api_max,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"{s.name}-worker", "labels": labels("worker", s.name)},
        "spec": {
            "scaleTargetRef": {"name": f"{s.name}-worker"},
            "minReplicaCount": WORKER_MIN,
            "maxReplicaCount": s.worker_max,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "name": f"{s.name}-{purpose}",
                    "metadata": {
                        "protocol": "amqp",
                        "mode": "QueueLength",
                        "value": QUEUE_BACKLOG_PER_REPLICA,
                        "queueName": f"{s.name}.{purpose}",
                    },
                    "authenticationRef": {"name": "koppel-rabbitmq"},
                }
                for purpose in s.queues
            ],
        },
    }
    return [migrate, api, api_service, api_pdb, hpa, worker, worker_pdb, scaled]


def console_documents() -> list[dict[str, Any]]:
    env = operator_secrets("console")  # the console keeps no database and uses no broker
    env += [{"name": f"KOPPEL_CONSOLE_{s.name.upper()}_URL", "value": f"http://{s.name}-api:{PORT}"} for s in SERVICES]
    main = container("console", "koppel/console", ["--host", "0.0.0.0", "--port", str(PORT)], env, "50m")
    main["ports"] = [{"name": "http", "containerPort": PORT}]
    main["readinessProbe"] = http_probe("/healthz", 5, 3)
    main["livenessProbe"] = http_probe("/healthz", 10, 6)
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "console", "labels": labels("console")},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector("console")},
                "template": {"metadata": {"labels": labels("console")}, "spec": pod_spec([main])},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "console", "labels": labels("console")},
            "spec": {"selector": selector("console"), "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "console", "labels": labels("console")},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector("console")}},
        },
    ]


def network_policies() -> list[dict[str, Any]]:
    """Nothing reaches a Koppel pod unless a policy below lets it: the APIs take traffic from the
    gateway (and the console, which reads them server-side); sync-svc's internal API also from the
    mandate and bookkeeping services, which call it for invites and reconciliation."""

    def policy(name: str, pods: dict[str, str], sources: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": {
                "podSelector": {"matchLabels": pods},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": PORT}]}] if sources else [],
            },
        }

    def pods(**match: str) -> dict[str, Any]:
        return {"podSelector": {"matchLabels": match}}

    gateway = pods(**{"app.kubernetes.io/name": "gateway"})
    console = pods(**{"app.kubernetes.io/name": "console"})
    # Koppel's own pods only: RabbitMQ's and PostgreSQL's pods are their operators' business (and
    # must stay reachable by the services).
    deny_all = policy("default-deny-ingress", {}, [])
    deny_all["spec"]["podSelector"] = {
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": ["api", "worker", "migrate", "console", "gateway", "sandbox"],
            }
        ]
    }
    return [
        deny_all,
        policy("apis-from-gateway-and-console", {"app.kubernetes.io/component": "api"}, [gateway, console]),
        policy(
            "sync-api-from-mandate-and-bookkeeping",
            {"app.kubernetes.io/name": "sync-api"},
            [pods(**{"koppel.io/service": "mandate"}), pods(**{"koppel.io/service": "bookkeeping"})],
        ),
        policy("console-from-gateway", {"app.kubernetes.io/name": "console"}, [gateway]),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "gateway-from-anywhere", "labels": {"app.kubernetes.io/part-of": PART_OF}},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}],
            },
        },
    ]


def files() -> dict[str, list[dict[str, Any]]]:
    out = {f"{s.name}.yaml": service_documents(s) for s in SERVICES}
    out["console.yaml"] = console_documents()
    out["network-policies.yaml"] = network_policies()
    return out


HEADER = "# Written by deploy/k8s/generate.py from its table; change the table and run it again.\n"


def render(documents: list[dict[str, Any]]) -> str:
    return HEADER + "".join("---\n" + yaml.safe_dump(d, sort_keys=False, width=120) for d in documents)


def main() -> int:
    for name, documents in files().items():
        (BASE / name).write_text(render(documents))
        print(f"wrote {(BASE / name).relative_to(HERE.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
