"""Hypothesis strategies for phone numbers and the ways people, phones and the upstream spell them."""

from __future__ import annotations

import phonenumbers
from hypothesis import strategies as st

REGION = "DE"
# Regions whose numbers reach the bridge from abroad; DE is the configured default_region.
REGIONS = ("DE", "AT", "CH", "FR", "GB", "US", "BR", "IN", "NG", "PL", "TR", "JP")


@st.composite
def phone_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A valid mobile number of one of REGIONS (the example number with its last digits drawn)."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    digits = str(example.national_number)
    tail = draw(st.integers(0, 9999))
    national = digits[:-4] + f"{tail:04d}"
    number = phonenumbers.parse("+" + str(example.country_code) + national)
    return number if phonenumbers.is_valid_number(number) else example


def _with_separators(draw: st.DrawFn, text: str) -> str:
    out = []
    for ch in text:
        out.append(ch)
        out.append(draw(st.sampled_from(("", "", "", " ", "-", ".", "/"))))
    return "".join(out).strip()


@st.composite
def spellings(draw: st.DrawFn, number: phonenumbers.PhoneNumber) -> str:
    """One way the number may be written: E.164, 00…, its digits without the `+` (the upstream loses it),
    or, in the default region, national with the trunk 0; with visual separators sprinkled in."""
    full = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    forms = [full, "00" + full[1:], full[1:]]
    if phonenumbers.region_code_for_number(number) == REGION:
        forms.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    return _with_separators(draw, draw(st.sampled_from(forms)))


@st.composite
def send_spellings(draw: st.DrawFn, number: phonenumbers.PhoneNumber) -> str:
    """A spelling `POST /v1/messages` reads as the number: E.164, 00…, or national in the default region."""
    full = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    forms = [full, "00" + full[1:]]
    if phonenumbers.region_code_for_number(number) == REGION:
        forms.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    return draw(st.sampled_from(forms))
