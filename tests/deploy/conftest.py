"""Fixtures of the deploy tests: the repository's container files, loaded once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "deploy" / "gateway"


def load_script(name: str, path: Path) -> ModuleType:
    """A script of the deploy folder (not a package), loaded from its path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gateway_render() -> ModuleType:
    """deploy/gateway/render.py."""
    return load_script("koppel_gateway_render", GATEWAY / "render.py")


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def template_text() -> str:
    return (GATEWAY / "nginx.conf.template").read_text()
