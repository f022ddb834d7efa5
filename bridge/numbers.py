"""Phone numbers compared as numbers: every spelling of one number (+49…, 0049…, 015…, 49…) reads alike.

Pure: no I/O. The safety checks, the store's keys, the API and the templates all read numbers through here.
"""

from __future__ import annotations

import functools

import phonenumbers

_NUMBER_SEPARATORS = str.maketrans("", "", " \t-.()/")


def normalize_number(number: str) -> str:
    """A phone number or sender id for comparison: visual separators (spaces, -, ., (), /) removed, casefolded."""
    return number.translate(_NUMBER_SEPARATORS).casefold()


@functools.lru_cache(maxsize=16384)
def number_readings(number: str, region: str | None) -> tuple[str, ...]:
    """The numbers a spelling may stand for, in E.164, the likeliest first; a sender id that is no phone number
    (letters, a service code) stands for its own text as `normalize_number` writes it.

    `+49…` and `0049…` are international; `015…` is national in `region`; bare digits (`4915…`, `15555215554`)
    are read both in `region` and as the upstream's lost `+`, a country code first. Valid numbers come before
    merely possible ones (a test SIM's `+15555215554`). Compare numbers by whether their readings meet.
    """
    plain = normalize_number(number)
    if not plain or is_alphanumeric_sender(plain):
        return (plain,)
    candidates = [(plain, region)]
    if plain.startswith("00"):
        candidates.append(("+" + plain[2:], None))
    elif plain.isdigit() and not plain.startswith("0"):
        candidates.append(("+" + plain, None))
    valid: list[str] = []
    possible: list[str] = []
    for text, where in candidates:
        try:
            parsed = phonenumbers.parse(text, where)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            valid.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        elif phonenumbers.is_possible_number(parsed):
            possible.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    readings = tuple(dict.fromkeys(valid + possible))
    return readings or (plain,)


def e164(number: str, region: str | None) -> str | None:
    """The valid phone number a spelling stands for, in E.164 (its likeliest reading), or None."""
    first = number_readings(number, region)[0]
    return first if first.startswith("+") and _is_valid(first) else None


@functools.lru_cache(maxsize=16384)
def _is_valid(full: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(full))
    except phonenumbers.NumberParseException:  # "+" before letters: a sender id, no number
        return False


def same_number(a: str, b: str, region: str | None) -> bool:
    """True when two spellings may stand for the same number (their readings meet)."""
    return not set(number_readings(a, region)).isdisjoint(number_readings(b, region))


def is_alphanumeric_sender(number: str) -> bool:
    """True for a sender id with letters ("DHL", "Vodafone"): such senders cannot receive a reply."""
    return any(ch.isalpha() for ch in number)
