"""Render the gateway's nginx template outside a container, with the official nginx image's rules.

The image's entrypoint runs ``envsubst "$defined_envs"`` over ``/etc/nginx/templates/*.template``,
where ``defined_envs`` lists the environment variables whose names match
``NGINX_ENVSUBST_FILTER``. envsubst then replaces ``${NAME}`` and ``$NAME`` for exactly those
names and leaves every other ``$...`` alone, which is what keeps nginx's own ``$request_id``,
``$host`` etc. intact. ``render`` does the same for the names it is given; ``select_env`` picks
names from an environment the way the filter does.

The template is http-level configuration (the image includes it from ``nginx.conf``'s ``http``
block); ``standalone_config`` wraps it in a main configuration for a local nginx::

    python deploy/gateway/render.py --prefix run/gateway      # values from the environment
    nginx -p run/gateway -c nginx.conf -e stderr -g 'daemon off;'

With ``--prefix``, missing ``*_UPSTREAM`` values default to the local API ports (8101-8105) and
``NGINX_LOCAL_RESOLVERS`` to the nameservers of ``/etc/resolv.conf``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")

# The same expression docker-compose.yml gives the image as NGINX_ENVSUBST_FILTER.
DEFAULT_FILTER = r"^(NGINX_LOCAL_RESOLVERS|GATEWAY_[A-Z_]+|[A-Z]+_UPSTREAM)$"

LOCAL_VALUES = {
    "GATEWAY_LISTEN": "127.0.0.1:8080",
    "MANDATE_UPSTREAM": "127.0.0.1:8101",
    "COLLECTION_UPSTREAM": "127.0.0.1:8102",
    "SYNC_UPSTREAM": "127.0.0.1:8103",
    "BOOKKEEPING_UPSTREAM": "127.0.0.1:8104",
    "NOTIFY_UPSTREAM": "127.0.0.1:8105",
    "CONSOLE_UPSTREAM": "127.0.0.1:8100",
    "GATEWAY_API_DOCS": str(Path(__file__).resolve().with_name("api")),
}

# envsubst's notion of a variable reference: ${NAME} or $NAME (NAME taken as long as possible).
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def render(template_text: str, values: Mapping[str, str]) -> str:
    """Replace ``${NAME}``/``$NAME`` for the names in ``values``; leave everything else as is."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values[name] if name in values else match.group(0)

    return _REFERENCE.sub(substitute, template_text)


def template_names(template_text: str) -> set[str]:
    """The ``${NAME}`` placeholders the template expects (upper case: nginx's own are lower)."""
    return {m.group(1) for m in _REFERENCE.finditer(template_text) if m.group(1) and m.group(1).isupper()}


def select_env(environ: Mapping[str, str], name_filter: str = DEFAULT_FILTER) -> dict[str, str]:
    """The variables the image would substitute: those whose name matches the filter (an
    unanchored search, like awk's ``~``; an empty filter selects all)."""
    pattern = re.compile(name_filter)
    return {name: value for name, value in environ.items() if pattern.search(name)}


def local_resolvers(resolv_conf: str) -> str:
    """Nameservers of a resolv.conf, as the image's ``15-local-resolvers.envsh`` collects them
    (IPv6 addresses bracketed, as nginx's ``resolver`` wants them)."""
    servers = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(f"[{parts[1]}]" if ":" in parts[1] else parts[1])
    return " ".join(servers) or "127.0.0.1"


def standalone_config(http_config: str, prefix: Path, user: str | None = None) -> str:
    """A complete nginx.conf around rendered http-level configuration, keeping every file nginx
    writes (pid, temp files) under ``prefix``, so that it runs without root."""
    prefix = Path(prefix).resolve()
    body = "\n".join("    " + line if line.strip() else "" for line in http_config.splitlines())
    user_line = f"user {user};\n" if user else ""
    return (
        f"{user_line}"
        "worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        f"    client_body_temp_path {prefix}/tmp/client_body;\n"
        f"    proxy_temp_path {prefix}/tmp/proxy;\n"
        f"    fastcgi_temp_path {prefix}/tmp/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/tmp/uwsgi;\n"
        f"    scgi_temp_path {prefix}/tmp/scgi;\n"
        f"{body}\n"
        "}\n"
    )


def write_standalone(
    prefix: Path, values: Mapping[str, str], template_text: str | None = None, user: str | None = None
) -> Path:
    """Render the template into ``prefix/nginx.conf`` (creating the directories nginx needs)."""
    text = TEMPLATE.read_text() if template_text is None else template_text
    prefix = Path(prefix).resolve()
    for sub in ("tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(standalone_config(render(text, values), prefix, user))
    return conf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--out", type=Path, help="write the rendered http-level file here (default: stdout)")
    parser.add_argument("--prefix", type=Path, help="write a complete nginx.conf (and temp dirs) under this directory")
    parser.add_argument("--filter", default=os.environ.get("NGINX_ENVSUBST_FILTER", DEFAULT_FILTER))
    args = parser.parse_args(argv)

    values = select_env(os.environ, args.filter)
    if args.prefix:
        resolv = Path("/etc/resolv.conf")
        values = {
            **LOCAL_VALUES,
            "NGINX_LOCAL_RESOLVERS": local_resolvers(resolv.read_text() if resolv.exists() else ""),
            **values,
        }
    text = args.template.read_text()
    missing = sorted(template_names(text) - values.keys())
    if missing:
        print(f"render.py: no value for {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.prefix:
        print(write_standalone(args.prefix, values, text))
    elif args.out:
        args.out.write_text(render(text, values))
    else:
        sys.stdout.write(render(text, values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
