"""Invoice input rules (what Twikey and Twinfield will accept), the SEPA text rules and their
opt-in transliteration, and the fingerprint that tells a repeat from a conflict."""

from datetime import date, timedelta

import pytest

from collection_svc.domain.invoices import InvoiceInput, differences, fingerprint, normalise
from collection_svc.domain.invoices import validate as validate_on
from collection_svc.domain.texts import first_bad_character, transliterate

TODAY = date(2026, 2, 1)


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


def validate(invoice: InvoiceInput) -> list:  # type: ignore[type-arg]
    return validate_on(invoice, TODAY)


def rules(invoice: InvoiceInput) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in validate(invoice)]


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


def test_the_sepa_character_set_is_the_epc_basic_latin_subset() -> None:
    assert first_bad_character("Invoice 2026/01 - (part 1 of 2): paid? +5.00, 'ok'") is None
    bad = first_bad_character("Zoë Ünal & Söhne <BV> — «€»")
    assert bad is not None
    assert (bad.position, bad.character, bad.code_point) == (3, "ë", "U+00EB")
    underscore = first_bad_character("INV_1")
    assert underscore is not None and (underscore.position, underscore.code_point) == (4, "U+005F")
    assert first_bad_character("tab\there") is not None


def test_transliteration_keeps_the_meaning_and_drops_what_has_no_sepa_form() -> None:
    assert transliterate("Zoë Ünal & Söhne <BV> — «€»") == "Zoe Unal Sohne BV - EUR"
    assert transliterate("Fußgängerübergänge") == "Fussgangerubergange"
    assert transliterate("   ") == ""
    assert first_bad_character(transliterate("Ĳssel_Ærø №5 — ½")) is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"description": "Zoë Ünal & Söhne <BV> — «€»"}, ("description", "sepa_characters")),
        ({"description": "INV_1"}, ("description", "sepa_characters")),
        ({"description": "x" * 141}, ("description", "twikey_length")),
        ({"description": None, "invoice_number": "INV_1"}, ("invoice_number", "sepa_characters")),
        ({"customer_name": "An <Peeters>"}, ("customer_name", "sepa_characters")),
        ({"customer_name": "A" * 51}, ("customer_name", "twikey_length")),
        ({"customer_email": "a" * 60 + "@example.be"}, ("customer_email", "twikey_length")),
        ({"customer_email": "not an e-mail"}, ("customer_email", "email_format")),
        ({"customer_number": "C" * 51}, ("customer_number", "twikey_length")),
        ({"invoice_number": ""}, ("invoice_number", "not_blank")),
        ({"invoice_number": "X" * 41}, ("invoice_number", "twinfield_length")),
        ({"invoice_number": "INV\x001"}, ("invoice_number", "printable")),
        ({"customer_number": "   "}, ("customer_number", "not_blank")),
        ({"customer_email": "an\x07@example.be"}, ("customer_email", "printable")),
        ({"subscription_reference": "SUB\x07"}, ("subscription_reference", "printable")),
        ({"amount_cents": 99_999_999_999 + 1}, ("amount_cents", "sepa_maximum")),
        (
            {"invoice_date": date(1900, 1, 1), "due_date": date(1900, 1, 15)},
            ("invoice_date", "not_too_old"),
        ),
        (
            {"invoice_date": TODAY + timedelta(days=367), "due_date": TODAY + timedelta(days=380)},
            ("invoice_date", "not_too_far_ahead"),
        ),
        ({"due_date": date(9999, 12, 31)}, ("due_date", "payment_term")),
    ],
)
def test_what_twikey_or_twinfield_would_refuse_is_refused_at_the_edge(
    overrides: dict[str, object], expected: tuple[str, str]
) -> None:
    assert expected in rules(make(**overrides))


def test_the_edges_of_the_windows_and_limits_are_accepted() -> None:
    assert validate(make(amount_cents=1)) == []
    assert validate(make(amount_cents=99_999_999_999)) == []
    assert validate(make(invoice_number="X" * 40, customer_number="C" * 50, description="d" * 140)) == []
    oldest = TODAY - timedelta(days=366)
    assert validate(make(invoice_date=oldest, due_date=oldest + timedelta(days=366))) == []
    ahead = TODAY + timedelta(days=366)
    assert validate(make(invoice_date=ahead, due_date=ahead)) == []
    assert validate(make(description=None, invoice_number="INV-2026/001")) == []


def test_a_bad_character_error_names_its_position_and_code_point() -> None:
    [error] = validate(make(description="Zoë"))
    assert error.details == {"position": 3, "character": "ë", "code_point": "U+00EB"}
    assert "position 3" in error.message and "U+00EB" in error.message


def test_normalise_strips_numbers_and_transliterates_only_when_asked() -> None:
    raw = make(invoice_number="  INV-1 ", customer_name="Zoë Ünal", description="Söhne & Co")
    kept = normalise(raw, transliterate_text=False)
    assert (kept.invoice_number, kept.customer_name, kept.description) == ("INV-1", "Zoë Ünal", "Söhne & Co")
    done = normalise(raw, transliterate_text=True)
    assert (done.customer_name, done.description) == ("Zoe Unal", "Sohne Co")
    assert validate(done) == []
    # without a description the statement says "Invoice <number>": made SEPA-safe as the description
    numbered = normalise(make(description=None, invoice_number="FÄ-1"), transliterate_text=True)
    assert (numbered.invoice_number, numbered.description) == ("FÄ-1", "Invoice FA-1")
