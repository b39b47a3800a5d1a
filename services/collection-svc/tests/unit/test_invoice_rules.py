"""Invoice input rules and the fingerprint that tells a repeat from a conflict."""

from datetime import date

from collection_svc.domain.invoices import InvoiceInput, differences, fingerprint, validate


def make(**overrides: object) -> InvoiceInput:
    values: dict[str, object] = {
        "invoice_number": "INV-1",
        "customer_number": "C-1",
        "customer_name": "An",
        "customer_email": "an@example.be",
        "amount_cents": 1000,
        "currency": "EUR",
        "invoice_date": date(2026, 2, 1),
        "due_date": date(2026, 2, 15),
        "description": "Invoice 1",
        "subscription_reference": None,
    }
    values.update(overrides)
    return InvoiceInput(**values)  # type: ignore[arg-type]


def test_a_valid_invoice_has_no_errors() -> None:
    assert validate(make()) == []


def test_zero_and_negative_amounts_are_refused() -> None:
    assert [(e.field, e.rule) for e in validate(make(amount_cents=0))] == [("amount_cents", "positive")]
    assert [(e.field, e.rule) for e in validate(make(amount_cents=-5))] == [("amount_cents", "positive")]


def test_only_euro_is_accepted() -> None:
    assert [(e.field, e.rule) for e in validate(make(currency="USD"))] == [("currency", "eur_only")]


def test_due_date_before_invoice_date_is_refused_and_equal_is_fine() -> None:
    bad = validate(make(due_date=date(2026, 1, 31)))
    assert [(e.field, e.rule) for e in bad] == [("due_date", "not_before_invoice_date")]
    assert validate(make(due_date=date(2026, 2, 1))) == []


def test_same_data_same_fingerprint_and_differences_are_named() -> None:
    assert fingerprint(make()) == fingerprint(make())
    assert fingerprint(make()) != fingerprint(make(amount_cents=1001))
    assert differences(make(), make(amount_cents=1001, description="x")) == ["amount_cents", "description"]
