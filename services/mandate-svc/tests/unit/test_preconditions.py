"""Every precondition of preparing a mandate: each broken rule names its field and rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mandate_svc.domain.preconditions import Customer, MandateRequest, PreconditionFailed, check_new_mandate

GOOD_IBAN = "BE16645348971174"
GOOD_BIC = "GKCCBEBB"


def req(delivery: str = "link", scheme: str = "CORE", **customer: str | None) -> MandateRequest:
    fields: dict[str, str | None] = {"number": "C-1", "name": "An Peeters", **customer}
    return MandateRequest(customer=Customer(**fields), scheme=scheme, delivery=delivery)  # type: ignore[arg-type]


def rules(request: MandateRequest) -> set[tuple[str, str]]:
    with pytest.raises(PreconditionFailed) as info:
        check_new_mandate(request)
    return {(v.field, v.rule) for v in info.value.violations}


def test_link_delivery_needs_only_a_customer_number_and_a_name() -> None:
    assert check_new_mandate(req("link")).customer.name == "An Peeters"


def test_email_delivery_without_email_is_refused() -> None:
    assert rules(req("email")) == {("customer.email", "required_for_email_delivery")}


def test_email_delivery_with_blank_email_is_refused() -> None:
    assert rules(req("email", email="   ")) == {("customer.email", "required_for_email_delivery")}


def test_malformed_email_is_refused() -> None:
    assert rules(req("email", email="an.example.be")) == {("customer.email", "email_format")}


def test_sms_delivery_needs_mobile_iban_and_bic() -> None:
    assert rules(req("sms")) == {
        ("customer.mobile", "required_for_sms_delivery"),
        ("customer.iban", "required_for_sms_delivery"),
        ("customer.bic", "required_for_sms_delivery"),
    }


def test_sms_delivery_with_mobile_iban_and_bic_is_accepted_and_normalised() -> None:
    ok = check_new_mandate(req("sms", mobile="0470 12 34 56", country="be", iban="be16 6453 4897 1174", bic="gkccbebb"))
    assert ok.customer.mobile == "+32470123456"
    assert ok.customer.iban == GOOD_IBAN
    assert ok.customer.bic == GOOD_BIC
    assert ok.customer.country == "BE"


def test_iban_with_a_wrong_checksum_is_refused() -> None:
    assert rules(req(iban="BE16645348971175")) == {("customer.iban", "iban_invalid")}


def test_iban_of_wrong_length_is_refused() -> None:
    assert rules(req(iban="BE1664534897117")) == {("customer.iban", "iban_invalid")}


def test_iban_outside_the_sepa_zone_is_refused() -> None:
    # A valid Brazilian IBAN: correct, but SEPA Direct Debit cannot collect from it.
    assert rules(req(iban="BR1800360305000010009795493C1")) == {("customer.iban", "iban_not_sepa")}


def test_malformed_bic_is_refused() -> None:
    assert rules(req(bic="GKCCBEB")) == {("customer.bic", "bic_invalid")}


def test_bic_with_unknown_country_is_refused() -> None:
    assert rules(req(bic="GKCCXXBB")) == {("customer.bic", "bic_invalid")}


def test_national_mobile_without_country_is_refused() -> None:
    assert rules(req(mobile="0470123456")) == {("customer.mobile", "phone_invalid")}


def test_invalid_phone_number_is_refused() -> None:
    assert rules(req(mobile="+3247012")) == {("customer.mobile", "phone_invalid")}


def test_landline_is_refused_as_mobile() -> None:
    assert rules(req(mobile="+3292123456")) == {("customer.mobile", "phone_invalid")}


def test_international_mobile_is_accepted_without_country() -> None:
    assert check_new_mandate(req(mobile="+31 6 12345678")).customer.mobile == "+31612345678"


def test_name_or_company_name_is_required() -> None:
    assert rules(req(name=None)) == {("customer.name", "name_or_company_required")}


def test_b2b_is_only_for_companies() -> None:
    assert rules(req(scheme="B2B")) == {("customer.company_name", "required_for_b2b")}


def test_b2b_for_a_company_is_accepted() -> None:
    assert check_new_mandate(req(scheme="B2B", name=None, company_name="Janssens BV")).scheme == "B2B"


def test_unknown_scheme_and_delivery_are_refused() -> None:
    assert rules(req("fax", scheme="COR1")) == {("scheme", "one_of"), ("delivery", "one_of")}


def test_unsupported_language_is_refused() -> None:
    assert rules(req(language="sv")) == {("customer.language", "language_unsupported")}


def test_language_is_lower_cased() -> None:
    assert check_new_mandate(req(language="NL")).customer.language == "nl"


def test_country_must_be_iso_alpha_2() -> None:
    assert rules(req(country="BEL")) == {("customer.country", "country_iso2")}


def test_blank_customer_number_is_refused() -> None:
    request = req()
    request = replace(request, customer=replace(request.customer, number="  "))
    assert rules(request) == {("customer.number", "required")}


def test_every_broken_rule_is_reported_at_once() -> None:
    found = rules(req("sms", scheme="B2B", name=None, iban="XX00", email="nope"))
    assert ("customer.iban", "iban_invalid") in found
    assert ("customer.mobile", "required_for_sms_delivery") in found
    assert ("customer.bic", "required_for_sms_delivery") in found
    assert ("customer.company_name", "required_for_b2b") in found
    assert ("customer.email", "email_format") in found


def test_a_bic_of_another_country_than_the_iban_is_refused() -> None:
    # a Belgian account with a Dutch bank's BIC: Twikey would be sent a pair no bank can collect on
    assert rules(req(iban=GOOD_IBAN, bic="ABNANL2A")) == {("customer.bic", "bic_iban_mismatch")}


def test_a_bic_of_the_ibans_country_or_of_the_country_serving_its_territory_is_accepted() -> None:
    assert check_new_mandate(req(iban=GOOD_IBAN, bic="GKCCBEBB")).customer.bic == GOOD_BIC
    # Réunion has IBANs of its own (RE…) at French banks: a French BIC serves them
    reunion = "RE9830006000000001123456700"
    assert check_new_mandate(req(iban=reunion, bic="BNPAFRPP")).customer.bic == "BNPAFRPP"
    # … and the BIC of a bank registered for that IBAN's bank code is always consistent
    assert check_new_mandate(req(iban="DE89370400440532013000", bic="COBADEFFXXX")).customer.iban
