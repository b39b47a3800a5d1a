from datetime import date

import pytest

from bookkeeping_svc.adapters.twinfield.answers import classify
from bookkeeping_svc.domain.booking import (
    Accounts,
    MissingCrossAccount,
    Payment,
    amount_text,
    first40,
    last40,
    own_descriptions,
    parse_amount,
    payment_memo,
    reversal_memo,
)
from bookkeeping_svc.domain.invoices import Found, NeedEmails, NotFound, OpenItem, find_own_memo, resolve_invoice

LONG_INVOICE = "ORDER-2025-" + "X" * 30 + "-0042"  # 46 characters
LONG_TX = "TX" + "7" * 40


def payment(**overrides: object) -> Payment:
    values: dict[str, object] = {
        "reference": "TX123",
        "invoice_number": "F2025-0042",
        "customer_number": "1001",
        "customer_email": "info@dekorf.nl",
        "amount_cents": 12100,
        "method": "direct_debit",
        "paid_on": date(2025, 3, 14),
    }
    values.update(overrides)
    return Payment(**values)  # type: ignore[arg-type]


def item(**overrides: object) -> OpenItem:
    values: dict[str, object] = {
        "office": "NLA000001",
        "daybook": "VRK",
        "number": "202500042",
        "line": 1,
        "customer": "1001",
        "invoice_number": "F2025-0042",
        "value_cents": 12100,
        "open_cents": 12100,
        "matchstatus": "available",
    }
    values.update(overrides)
    return OpenItem(**values)  # type: ignore[arg-type]


def test_payment_memo_has_cross_account_debit_and_debtor_credit_with_customer() -> None:
    memo = payment_memo(payment(), "1001", Accounts())
    debit, credit = memo.lines
    assert (debit.dim1, debit.debitcredit, debit.value_cents, debit.description) == (
        "1105",
        "debit",
        12100,
        "F2025-0042",
    )
    assert debit.dim2 is None and debit.invoicenumber is None
    assert (credit.dim1, credit.dim2, credit.debitcredit, credit.invoicenumber) == (
        "1300",
        "1001",
        "credit",
        "F2025-0042",
    )
    assert memo.customer_line_id == 2
    assert memo.daybook == "MEMO" and memo.date == date(2025, 3, 14)


def test_invoice_number_keeps_its_last_40_and_description_its_first_40_characters() -> None:
    memo = payment_memo(payment(reference=LONG_TX, invoice_number=LONG_INVOICE), "1001", Accounts())
    debit, credit = memo.lines
    assert credit.invoicenumber == LONG_INVOICE[-40:]
    assert credit.invoicenumber.endswith("-0042") and len(credit.invoicenumber) == 40
    assert credit.description == debit.description == LONG_INVOICE[:40]
    assert credit.description.startswith("ORDER-2025-") and len(credit.description) == 40
    assert first40("kort") == "kort" and last40("kort") == "kort"


def test_a_reversal_is_told_apart_by_its_sides_and_a_marker_the_40_characters_keep() -> None:
    paid = payment_memo(payment(invoice_number=LONG_INVOICE), "1001", Accounts())
    undone = reversal_memo(payment(invoice_number=LONG_INVOICE), "1001", Accounts(), date(2025, 4, 1))
    assert [ln.debitcredit for ln in paid.lines] == ["debit", "credit"]
    assert [ln.debitcredit for ln in undone.lines] == ["credit", "debit"]
    text = undone.lines[1].description
    assert text.startswith("Storno ") and len(text) == 40 and text == f"Storno {LONG_INVOICE}"[:40]
    assert undone.lines[1].invoicenumber == paid.lines[1].invoicenumber == LONG_INVOICE[-40:]
    assert own_descriptions("TX1", LONG_INVOICE) == {LONG_INVOICE[:40], "TX1 betaling"}
    assert own_descriptions("TX1", LONG_INVOICE, reversal=True) == {text, "TX1 storno"}


def test_pay_link_uses_its_own_cross_account_and_unknown_method_is_refused() -> None:
    accounts = Accounts(debtor_account="1310", cross_accounts={"direct_debit": "1105", "paylink": "1110"})
    memo = payment_memo(payment(method="paylink"), "1001", accounts)
    assert memo.lines[0].dim1 == "1110" and memo.lines[1].dim1 == "1310"
    with pytest.raises(MissingCrossAccount):
        payment_memo(payment(method="cash"), "1001", accounts)


def test_freetext_field_carries_our_reference_when_configured() -> None:
    memo = payment_memo(payment(), "1001", Accounts(freetext_field=2))
    assert memo.freetext == (2, "TX123")


def test_reversal_memo_mirrors_the_payment() -> None:
    memo = reversal_memo(payment(), "1001", Accounts(), date(2025, 4, 1))
    assert [(ln.dim1, ln.debitcredit) for ln in memo.lines] == [("1105", "credit"), ("1300", "debit")]
    assert memo.lines[1].invoicenumber == "F2025-0042"
    assert memo.lines[1].description == "Storno F2025-0042"


def test_amounts_are_written_with_two_decimals_and_read_signed() -> None:
    assert amount_text(12100) == "121.00" and amount_text(5) == "0.05"
    assert parse_amount("-121.00") == -12100 and parse_amount("1210.5") == 121050 and parse_amount("0") == 0
    with pytest.raises(ValueError):
        amount_text(-1)


def test_open_invoice_with_number_and_amount_is_found_whatever_its_year() -> None:
    rows = [
        item(daybook="MEMO", number="202400001", line=2, value_cents=-5000, open_cents=-5000),
        item(number="202300007"),
    ]
    assert resolve_invoice(payment(), rows) == Found(rows[1])


def test_long_invoice_number_is_looked_up_by_its_last_40_characters() -> None:
    row = item(invoice_number=LONG_INVOICE[-40:])
    assert resolve_invoice(payment(invoice_number=LONG_INVOICE), [row]) == Found(row)


def test_missing_invoice_is_not_found_with_reason() -> None:
    result = resolve_invoice(payment(), [item(invoice_number="F2025-0041")])
    assert isinstance(result, NotFound) and result.code == "invoice_not_found"
    assert "F2025-0042" in result.message


def test_matched_invoice_and_other_amount_are_told_apart() -> None:
    matched = resolve_invoice(payment(), [item(matchstatus="matched", open_cents=0)])
    assert isinstance(matched, NotFound) and matched.code == "already_matched"
    other = resolve_invoice(payment(), [item(open_cents=10000)])
    assert isinstance(other, NotFound) and other.code == "amount_mismatch"


def test_several_candidates_are_decided_by_customer_code_then_email() -> None:
    a = item(customer="2001")
    b = item(customer="1001", number="202500043")
    assert resolve_invoice(payment(), [a, b]) == Found(b)
    c = item(customer="3001")
    need = resolve_invoice(payment(customer_number="9999"), [a, c])
    assert need == NeedEmails(("2001", "3001"))
    emails = {"2001": "other@x.nl", "3001": "INFO@dekorf.nl"}
    assert resolve_invoice(payment(customer_number="9999"), [a, c], emails=emails) == Found(c)
    unclear = resolve_invoice(payment(customer_number="9999"), [a, c], emails={})
    assert isinstance(unclear, NotFound) and unclear.code == "ambiguous_invoice"


def test_own_memo_is_recognised_by_invoice_number_and_description_among_unclaimed_memos() -> None:
    rows = [
        item(daybook="MEMO", number="202500003", line=2, value_cents=-12100, description="TX999 betaling"),
        item(daybook="MEMO", number="202500004", line=2, value_cents=-12100, description="TX123 betaling"),
        item(daybook="MEMO", number="202500005", line=2, value_cents=-12100, description="F2025-0042"),
        item(daybook="MEMO", number="202500006", line=2, value_cents=-12100, description="F2025-0042"),
        item(daybook="MEMO", number="202500007", line=2, value_cents=-12100, description=""),  # not ours
    ]
    # A MEMO of the older convention names our reference.
    assert find_own_memo(rows, "F2025-0042", own_descriptions("TX123", "F2025-0042"), {"202500005"}) == rows[1]
    # The invoice-number convention: the first MEMO no other booking keeps.
    texts = own_descriptions("TX124", "F2025-0042")
    assert find_own_memo(rows, "F2025-0042", texts) == rows[2]
    assert find_own_memo(rows, "F2025-0042", texts, {"202500005"}) == rows[3]
    assert find_own_memo(rows, "F2025-0042", texts, {"202500005", "202500006"}) is None
    assert find_own_memo(rows, "F2025-0099", texts) is None


@pytest.mark.parametrize(
    ("message", "node", "code"),
    [
        ("De boeking kan niet gemaakt worden omdat periode 2020/01 niet bestaat", "period", "period_closed"),
        ("Dimensie 9999 bestaat niet.", "dim2", "unknown_customer"),
        ("Dimensie 1999 bestaat niet.", "dim1", "unknown_account"),
        ("Boeking VRK 202100008 regel 2 is niet beschikbaar voor afletteren.", "line", "already_matched"),
        ("De boeking is niet in balans. Er ontbreekt 1.00 debet.", "transaction", "validation"),
        ("Configuratiefout in rekening-courant.", "transaction", "validation"),
        ("Period 2020/01 does not exist.", "header", "period_closed"),
    ],
)
def test_twinfield_messages_are_classified_with_a_hint(message: str, node: str, code: str) -> None:
    classified = classify(message, node)
    assert classified.code == code
    assert classified.hint


def test_a_refused_customer_update_is_an_unknown_customer_by_element_then_wording() -> None:
    from bookkeeping_svc.adapters.twinfield.answers import customer_update_error
    from bookkeeping_svc.adapters.twinfield.documents import Message

    assert customer_update_error([Message("code", "Dimension 1001 does not exist.", "error")]).code == (
        "unknown_customer"
    )
    on_root = Message("dimension", "Naam is verplicht voor een nieuwe debiteur.", "error")
    assert customer_update_error([on_root]).code == "unknown_customer"
    assert customer_update_error([Message("iban", "Ongeldige IBAN.", "error")]).code == "validation"
