"""deploy/gateway/render.py substitutes like the official nginx image's envsubst step: only the
given names, in both ``${NAME}`` and ``$NAME`` form, leaving nginx's own variables alone."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def test_render_substitutes_only_the_given_names(gateway_render: ModuleType) -> None:
    text = 'proxy_pass http://${MANDATE_UPSTREAM}; set $id $request_id; add_header X "${OTHER}";'
    out = gateway_render.render(text, {"MANDATE_UPSTREAM": "mandate-api:8000"})
    assert out == 'proxy_pass http://mandate-api:8000; set $id $request_id; add_header X "${OTHER}";'


def test_render_replaces_the_bare_form_like_envsubst(gateway_render: ModuleType) -> None:
    values = {"HOST": "h", "PORT": "1"}
    assert gateway_render.render("$HOST:$PORT ${HOST}x $HOSTNAME $host", values) == "h:1 hx $HOSTNAME $host"


def test_render_keeps_empty_values_and_unterminated_references(gateway_render: ModuleType) -> None:
    assert gateway_render.render("a${EMPTY}b ${EMPTY c $ $1", {"EMPTY": ""}) == "ab ${EMPTY c $ $1"


def test_select_env_matches_names_like_the_image_filter(gateway_render: ModuleType) -> None:
    environ = {
        "MANDATE_UPSTREAM": "m",
        "GATEWAY_LISTEN": "8080",
        "NGINX_LOCAL_RESOLVERS": "127.0.0.11",
        "NGINX_VERSION": "1.28",
        "HOSTNAME": "abc",
        "X_MANDATE_UPSTREAM_Y": "no",
    }
    assert gateway_render.select_env(environ) == {
        "MANDATE_UPSTREAM": "m",
        "GATEWAY_LISTEN": "8080",
        "NGINX_LOCAL_RESOLVERS": "127.0.0.11",
    }
    assert gateway_render.select_env(environ, "") == environ


def test_local_resolvers_reads_nameservers(gateway_render: ModuleType) -> None:
    conf = "# generated\nsearch lan\nnameserver 10.0.0.2\nnameserver fd00::1\noptions ndots:0\n"
    assert gateway_render.local_resolvers(conf) == "10.0.0.2 [fd00::1]"
    assert gateway_render.local_resolvers("") == "127.0.0.1"


def test_template_names_are_the_upper_case_placeholders(gateway_render: ModuleType, template_text: str) -> None:
    names = gateway_render.template_names(template_text)
    assert names == {
        "GATEWAY_LISTEN",
        "GATEWAY_API_DOCS",
        "NGINX_LOCAL_RESOLVERS",
        "MANDATE_UPSTREAM",
        "COLLECTION_UPSTREAM",
        "SYNC_UPSTREAM",
        "BOOKKEEPING_UPSTREAM",
        "NOTIFY_UPSTREAM",
        "CONSOLE_UPSTREAM",
    }


def test_rendering_leaves_no_placeholder_and_keeps_nginx_variables(
    gateway_render: ModuleType, template_text: str
) -> None:
    values = {name: "x" for name in gateway_render.template_names(template_text)}
    out = gateway_render.render(template_text, values)
    assert "${" not in out
    for nginx_variable in ("$request_id", "$http_x_request_id", "$uri", "$mandate_upstream"):
        assert nginx_variable in out


def _gateway_environment(compose: dict[str, Any]) -> dict[str, str]:
    env = dict(compose["services"]["gateway"]["environment"])
    # What compose hands the container ($$ is a literal $; ${VAR:-default} with VAR unset) and what
    # the image's 15-local-resolvers.envsh exports on Docker's network.
    env["NGINX_ENVSUBST_FILTER"] = env["NGINX_ENVSUBST_FILTER"].replace("$$", "$")
    env["CONSOLE_UPSTREAM"] = "console:8000"
    env["NGINX_LOCAL_RESOLVERS"] = "127.0.0.11 "
    return env


@pytest.mark.skipif(not (shutil.which("envsubst") and shutil.which("awk")), reason="envsubst/awk not installed")
def test_render_matches_the_image_entrypoint_on_the_real_template(
    gateway_render: ModuleType, compose: dict[str, Any], template_text: str, tmp_path: Path
) -> None:
    """Run the official image's own two lines (awk filter over the environment, then envsubst)
    with the compose gateway environment, and compare with render()."""
    env = {"PATH": "/usr/bin:/bin", **_gateway_environment(compose)}
    template = tmp_path / "default.conf.template"
    template.write_text(template_text)
    script = (
        'filter="${NGINX_ENVSUBST_FILTER:-}"\n'
        "defined_envs=$(printf '${%s} ' $(awk \"END { for (name in ENVIRON) "
        '{ print ( name ~ /${filter}/ ) ? name : \\"\\" } }" </dev/null))\n'
        'envsubst "$defined_envs" < "$1"\n'
    )
    image = subprocess.run(["sh", "-c", script, "sh", str(template)], env=env, capture_output=True, text=True)
    assert image.returncode == 0, image.stderr
    ours = gateway_render.render(template_text, gateway_render.select_env(env, env["NGINX_ENVSUBST_FILTER"]))
    assert ours == image.stdout
    assert "${" not in ours


def test_standalone_config_keeps_writable_paths_under_the_prefix(gateway_render: ModuleType, tmp_path: Path) -> None:
    conf = gateway_render.standalone_config("server {\n    listen 1;\n}", tmp_path)
    assert f"pid {tmp_path.resolve()}/nginx.pid;" in conf
    assert f"client_body_temp_path {tmp_path.resolve()}/tmp/client_body;" in conf
    assert conf.count("{") == conf.count("}")
    assert "user " not in conf


def test_main_refuses_to_render_with_missing_values(
    gateway_render: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("MANDATE_UPSTREAM", "NGINX_LOCAL_RESOLVERS", "GATEWAY_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    assert gateway_render.main([]) == 2
    assert "MANDATE_UPSTREAM" in capsys.readouterr().err


def test_main_writes_a_local_config_with_local_defaults(
    gateway_render: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNC_UPSTREAM", "127.0.0.1:9103")
    assert gateway_render.main(["--prefix", str(tmp_path)]) == 0
    conf = (tmp_path / "nginx.conf").read_text()
    assert 'set $mandate_upstream "127.0.0.1:8101";' in conf
    assert 'set $sync_upstream "127.0.0.1:9103";' in conf
    assert (tmp_path / "tmp" / "client_body").is_dir()
