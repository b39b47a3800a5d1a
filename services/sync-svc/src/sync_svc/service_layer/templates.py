"""Which of the tenant's configured Twikey templates the API key really has.

Twikey's public API has no call that lists a creditor's contract templates (its SDKs say the id is
found in the dashboard, Settings → Templates). What can be asked is whether one template exists:
``GET /payment/methods?ct=`` answers for the key's own templates and refuses any other with
``err_no_such_ct``. So the connection test reports the configured ``core_template_id`` and
``b2b_template_id``: each one Twikey knows under ``templates``, each one it refuses under
``template_problems``. Twikey tells neither a template's name nor its scheme there; the scheme is
the one it is configured for, and the name says so.
"""

from __future__ import annotations

from typing import Any

from sync_svc.adapters.twikey_client import TwikeyClient, TwikeyError, TwikeyUnavailable
from sync_svc.service_layer.connections import Connection

SETTINGS = (("CORE", "core_template_id"), ("B2B", "b2b_template_id"))


def _id(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


async def check(client: TwikeyClient, connection: Connection) -> dict[str, list[dict[str, Any]]]:
    """``{"templates": [...], "template_problems": [...]}`` for the configured template ids."""
    found: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for scheme, setting in SETTINGS:
        raw = connection.template_for(scheme)
        if not raw:
            problems.append(
                {"setting": setting, "id": None, "scheme": scheme, "code": "template_not_configured",
                 "message": f"no {scheme} template is configured; mandates of this scheme cannot be prepared"}
            )  # fmt: skip
            continue
        base = {"setting": setting, "id": _id(raw), "scheme": scheme}
        try:
            exists = await client.template_exists(raw)
        except TwikeyError as exc:
            problems.append({**base, "code": exc.code, "message": exc.message})
            continue
        except TwikeyUnavailable as exc:
            problems.append({**base, "code": "twikey_unavailable", "message": str(exc)})
            continue
        if exists:
            found.append({**base, "name": f"{scheme} template {raw}"})
        else:
            problems.append(
                {**base, "code": "err_no_such_ct", "message": f"Twikey has no template {raw} for this API key"}
            )
    return {"templates": found, "template_problems": problems}
