"""Numbers are compared as numbers: every spelling of one phone number reads as its E.164 form."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from number_spellings import REGION, phone_numbers, spellings

from bridge.numbers import e164, number_readings, same_number
from bridge.safety import is_own_number

@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_spelling_reads_as_the_e164_number(data: st.DataObject) -> None:
    """+49…, 0049…, 015… and 49… (the lost `+`), separators or not, all read as the number's E.164 form."""
    number = data.draw(phone_numbers())
    spelled = data.draw(spellings(number))
    assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) in number_readings(spelled, REGION)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_two_spellings_of_one_number_are_the_same_number(data: st.DataObject) -> None:
    """Any two spellings of one number compare equal."""
    number = data.draw(phone_numbers())
    assert same_number(data.draw(spellings(number)), data.draw(spellings(number)), REGION)


@settings(max_examples=300, deadline=None)
@given(first=phone_numbers(), second=phone_numbers())
def test_different_numbers_in_e164_are_different(first: phonenumbers.PhoneNumber,
                                                 second: phonenumbers.PhoneNumber) -> None:
    """Two different numbers written in E.164 never compare equal."""
    a, b = (phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in (first, second))
    assert same_number(a, b, REGION) is (a == b)


@pytest.mark.parametrize(
    "sender", ["015100000001", "004915100000001", "4915100000001", "+49 151 00000001", "15555215554",
               "+15555215554", " 1 555 521 5554"],
)
def test_own_number_holds_in_every_spelling(sender: str) -> None:
    """The gateway's own SIM numbers are recognised however the sender is spelled, the lost `+` included."""
    assert is_own_number(sender, ("+15555215554", "+4915100000001"), REGION)


def test_another_number_is_not_own() -> None:
    """A number that is none of the SIMs' is not own, in any spelling."""
    assert not is_own_number("015100000002", ("+15555215554", "+4915100000001"), REGION)


@pytest.mark.parametrize(("sender", "reading"), [("DHL", "dhl"), ("Vodafone", "vodafone"), ("*100#", "*100#")])
def test_a_sender_id_that_is_no_number_compares_as_text(sender: str, reading: str) -> None:
    """Alphanumeric sender ids and service codes compare by their text, without case."""
    assert number_readings(sender, REGION) == (reading,)


@pytest.mark.parametrize(
    ("spelled", "normal"),
    [("+4915752982212", "+4915752982212"), ("015752982212", "+4915752982212"),
     ("0049 1575 2982212", "+4915752982212"), ("+1 202-555-0143", "+12025550143"), ("12", None), ("DHL", None)],
)
def test_e164_reads_a_number_in_the_default_region(spelled: str, normal: str | None) -> None:
    """e164 gives the valid E.164 number a spelling stands for, or None."""
    assert e164(spelled, REGION) == normal
