"""The API documentation pages load nothing from outside: every asset the pages name is served by
the service itself."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from koppel_shared.web.app import create_app


def test_swagger_and_redoc_pages_use_only_assets_the_service_serves() -> None:
    client = TestClient(create_app(title="docs check", settings=None))
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']|spec-url=["']([^"']+)["']""", html)
        assets = [u for group in urls for u in group if u]
        assert assets, page
        assert not [u for u in assets if u.startswith(("http:", "https:", "//"))], f"{page} loads {assets}"
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
