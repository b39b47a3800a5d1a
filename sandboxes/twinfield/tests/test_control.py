"""The control API: bulk seeding, reading records back, reset, and isolation between apps."""

from __future__ import annotations

from twinfield_sandbox import create_app
from twinfield_sandbox.testing import OFFICE, el_text


def test_seeding_thousands_of_invoices_and_browsing_one(tw, http) -> None:
    customers = [
        {"code": f"{1000 + i}", "name": f"Klant {i}", "email": f"k{i}@example.nl", "iban": "NL91ABNA0417164300"}
        for i in range(500)
    ]
    assert http.post(f"/_sandbox/offices/{OFFICE}/customers", json={"customers": customers}).status_code == 201
    invoices = [
        {
            "customer": f"{1000 + i % 500}",
            "invoice_number": f"INV-{i:05d}",
            "amount": f"{10 + i % 90}.50",
            "date": "20250301",
        }
        for i in range(5000)
    ]
    reply = http.post(f"/_sandbox/offices/{OFFICE}/invoices", json={"invoices": invoices})
    assert reply.status_code == 201
    created = reply.json()["created"]
    assert len(created) == 5000
    assert created[-1]["number"] == 2025_05000

    browse = (
        '<columns code="100"><column><field>fin.trs.line.invnumber</field><visible>true</visible>'
        "<operator>equal</operator><from>INV-04321</from></column><column><field>fin.trs.line.dim2</field>"
        "<visible>true</visible></column><column><field>fin.trs.line.openbasevaluesigned</field>"
        "<visible>true</visible></column></columns>"
    )
    result = tw.ok(browse)
    assert result.get("total") == "1"
    assert el_text(result, "tr/td[@field='fin.trs.line.dim2']") == str(1000 + 4321 % 500)
    assert el_text(result, "tr/td[@field='fin.trs.line.openbasevaluesigned']") == f"{10 + 4321 % 90}.50"


def test_invoice_seed_rejects_duplicates_and_unknown_customers(http) -> None:
    http.post(f"/_sandbox/offices/{OFFICE}/customers", json={"customers": [{"code": "1"}]})
    ok = http.post(
        f"/_sandbox/offices/{OFFICE}/invoices",
        json={"invoices": [{"customer": "1", "invoice_number": "A", "amount": 5}]},
    )
    assert ok.status_code == 201
    dup = http.post(
        f"/_sandbox/offices/{OFFICE}/invoices",
        json={"invoices": [{"customer": "1", "invoice_number": "A", "amount": 5}]},
    )
    assert dup.status_code == 422
    unknown = http.post(
        f"/_sandbox/offices/{OFFICE}/invoices",
        json={"invoices": [{"customer": "2", "invoice_number": "B", "amount": 5}]},
    )
    assert unknown.status_code == 422


def test_reset_clears_everything_and_reseeds_defaults(tw, http) -> None:
    http.post(f"/_sandbox/offices/{OFFICE}/customers", json={"customers": [{"code": "1"}]})
    assert http.post("/_sandbox/reset", json={}).json() == {"reset": True}
    assert http.get(f"/_sandbox/offices/{OFFICE}/customers").json() == []
    info = http.get("/_sandbox/info").json()
    assert info["default_client_id"] == "koppel-sandbox"
    assert info["organisations"] == {"KOPPEL": [OFFICE]}
    # The old token belonged to the old state.
    assert tw.call("<list><type>offices</type></list>").status == 401


def test_new_organisation_with_offices_and_a_token_for_it(http) -> None:
    org = http.post(
        "/_sandbox/organisations",
        json={"code": "ACME", "name": "Acme", "offices": [{"code": "NLA100"}, {"code": "NLA200"}]},
    ).json()
    assert org["offices"] == ["NLA100", "NLA200"]
    tokens = http.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": "ACME"}).json()
    assert tokens["offices"] == ["NLA100", "NLA200"]
    assert tokens["cluster_url"].startswith("http://127.0.0.1:")


def test_two_apps_do_not_share_state() -> None:
    first, second = create_app(), create_app()
    first.state.sandbox.state.offices.clear()
    assert OFFICE in second.state.sandbox.state.offices
    assert first.state.sandbox is not second.state.sandbox
