"""Reconciliation rules without I/O: Twikey's record netted per paid item and per mandate, periods,
number ranges, and the kinds of difference."""

from __future__ import annotations

from datetime import date

from bookkeeping_svc.domain.reconcile import (
    Booking,
    Comparison,
    LedgerLine,
    net_mandates,
    net_twikey,
    number_ranges,
    payment_text_of,
    periods,
    unclaimed_payments,
)


def _entry(kind: str, tid: str, state: str, seq: int, cents: int = 12100) -> dict[str, object]:
    return {
        "kind": kind,
        "twikey_id": tid,
        "state": state,
        "seq": seq,
        "amount_cents": cents,
        "at": "2025-03-14T08:00:00Z",
    }


def test_kinds_with_the_same_id_are_two_paid_items_and_failed_after_paid_is_a_reversal() -> None:
    items = net_twikey(
        [
            _entry("transaction", "7", "paid", 1),
            _entry("paylink", "7", "paid", 2),
            _entry("transaction", "7", "failed", 3),
            _entry("transaction", "8", "failed", 4),  # never paid: not a payment
        ]
    )
    assert set(items) == {("transaction", "7"), ("paylink", "7")}
    assert items[("transaction", "7")].reversed and not items[("paylink", "7")].reversed


def test_periods_and_number_ranges() -> None:
    assert periods(date(2024, 11, 20), date(2025, 2, 1)) == ["2024/11", "2024/12", "2025/01", "2025/02"]
    assert number_ranges([5, 1, 2000, 2001, 9000], 2000) == [(1, 2000), (2001, 2001), (9000, 9000)]


def _booking(**extra: object) -> Booking:
    values: dict[str, object] = {
        "id": "b1",
        "kind": "transaction",
        "twikey_id": "7",
        "reference": "TX7",
        "collection_id": "c1",
        "invoice_number": "F1",
        "customer_number": "1001",
        "amount_cents": 12100,
        "status": "booked",
        "paid_on": date(2025, 3, 14),
        "memo_number": "202500001",
    }
    values.update(extra)
    return Booking(**values)  # type: ignore[arg-type]


def _memo(number: str, cents: int = -12100, invoice: str = "F1") -> LedgerLine:
    return LedgerLine("MEMO", number, 2, "2025/03", "1001", invoice, cents, "available", "", "TX7 betaling")


def test_each_side_disagreeing_is_named() -> None:
    twikey = net_twikey([{**_entry("transaction", "7", "paid", 1, 12500), "reference": "c1"}])
    found = Comparison(twikey, [_booking()], [_memo("202500001"), _memo("202500002", -12100, "F9")], {}).run()
    assert sorted(d.kind for d in found) == ["amount_mismatch", "booked_twice"]
    assert {d.fix for d in found} == {"error"}


def _bare(number: str, cents: int = -12100, invoice: str = "F1") -> LedgerLine:
    """A MEMO customer line as browse 100 gives it: no description."""
    return LedgerLine("MEMO", number, 2, "2025/03", "1001", invoice, cents, "available", "")


def test_a_memo_line_is_the_bookings_by_its_number_and_an_unclaimed_one_by_its_read_description() -> None:
    twikey = net_twikey([{**_entry("transaction", "7", "paid", 1), "reference": "c1"}])
    lines = [_bare("202500001"), _bare("202500002"), _bare("202500003"), _bare("202500004", 12100)]
    # Only unclaimed payment (credit) lines are read in full; the booking's own and debits are not.
    assert [line.number for line in unclaimed_payments(lines, [_booking()])] == ["202500002", "202500003"]
    clean = Comparison(twikey, [_booking()], [_bare("202500001")], {}).run()
    assert clean == []
    texts = {("202500002", 2): "F1", ("202500003", 2): "Betaling klant 1001 per bank"}
    (twice,) = Comparison(twikey, [_booking()], lines, {}, memo_texts=texts).run()
    assert twice.kind == "booked_twice"
    assert [line["number"] for line in twice.twinfield] == ["202500001", "202500002"]
    # A second MEMO of ours whose read was not made is not guessed to be ours (the run fails instead).
    assert Comparison(twikey, [_booking()], lines, {}).run() == []


def test_an_unclaimed_memo_of_ours_without_a_booking_is_booked_not_paid() -> None:
    texts = {("202500009", 2): "F8", ("202500010", 2): "TX9 betaling", ("202500011", 2): "Correctie"}
    lines = [_bare("202500009", invoice="F8"), _bare("202500010", invoice="F9"), _bare("202500011", invoice="F7")]
    found = Comparison({}, [], lines, {}, memo_texts=texts).run()
    assert [(d.kind, d.key, d.twinfield[0]["description"]) for d in found] == [
        ("booked_not_paid", "memo:MEMO:202500009", "F8"),
        ("booked_not_paid", "memo:TX9 betaling", "TX9 betaling"),
    ]


def test_the_lost_answer_of_a_booking_goes_to_the_booking_without_a_memo_number() -> None:
    twikey = net_twikey(
        [
            {**_entry("transaction", "7", "paid", 1), "reference": "c1"},
            {**_entry("transaction", "8", "paid", 2), "reference": "c2"},
        ]
    )
    first = _booking()  # MEMO 202500001
    second = _booking(id="b2", twikey_id="8", reference="TX8", collection_id="c2", memo_number=None, status="posting")
    lines = [_bare("202500001"), _bare("202500002")]
    found = Comparison(twikey, [first, second], lines, {}, memo_texts={("202500002", 2): "F1"}).run()
    assert found == []  # one MEMO each: the second payment of invoice F1 is not "booked twice"


def test_payment_text_of_a_long_invoice_number_overlaps_its_last_40_characters() -> None:
    number = "ORDER-2025-" + "X" * 30 + "-0042"
    assert payment_text_of(number[:40], number[-40:])
    assert payment_text_of("F1", "F1") and not payment_text_of("F2", "F1") and not payment_text_of("", "F1")


def test_a_booking_said_booked_without_a_memo_is_paid_not_booked_with_the_book_fix() -> None:
    twikey = net_twikey([{**_entry("transaction", "7", "paid", 1), "reference": "c1"}])
    (found,) = Comparison(twikey, [_booking()], [], {}).run()
    assert (found.kind, found.fix, found.booking_id) == ("paid_not_booked", "book", "b1")


def _message(number: str, change: str, seq: int, state: str | None = "SIGNED", **extra: object) -> dict[str, object]:
    return {"mandate_number": number, "change": change, "state": state, "seq": seq, **extra}


def test_a_signed_mandate_at_twikey_that_koppel_never_published_is_mandate_unknown_fixed_by_adopting() -> None:
    mandates = net_mandates(
        [
            _message("KOP1", "signed", 1),
            _message("DASH7", "signed", 2, customer_number="C-7", name="An Peeters", signature_date="2025-03-01"),
            _message("DASH7", "updated", 5, state=None),  # an amendment keeps what Twikey said before
            _message("GONE3", "signed", 3),
            _message("GONE3", "cancelled", 4, state="CANCELLED"),  # cancelled: it can collect nothing
            _message("NEVER9", "updated", 6),  # never signed in the feed: not a signed mandate
        ]
    )
    assert set(mandates) == {"KOP1", "DASH7", "GONE3"} and mandates["GONE3"].cancelled
    (found,) = Comparison({}, [], [], {}, mandates=mandates, koppel_mandates={"kop1"}).run()
    assert (found.kind, found.fix, found.key, found.twikey_id) == ("mandate_unknown", "adopt", "mandate:DASH7", "DASH7")
    assert found.twikey == {
        "mandate_number": "DASH7",
        "state": "SIGNED",
        "customer_number": "C-7",
        "name": "An Peeters",
        "signature_date": "2025-03-01",
    }
    assert "/v1/unclaimed-mandates/DASH7" in found.detail and found.booking_id is None


def test_a_mandate_koppel_published_is_no_difference_whatever_its_state_at_twikey() -> None:
    mandates = net_mandates([_message("KOP1", "signed", 1), _message("KOP1", "updated", 2, state="SUSPENDED")])
    assert Comparison({}, [], [], {}, mandates=mandates, koppel_mandates={"KOP1"}).run() == []
    (found,) = Comparison({}, [], [], {}, mandates=mandates).run()
    assert "suspended at Twikey" in found.detail
