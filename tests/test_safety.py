"""The pure safety predicates the store and the sender apply to replies and sends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridge.config import Rate, SafetyConfig
from bridge.numbers import is_alphanumeric_sender, normalize_number
from bridge.safety import (
    Refusal,
    cooldown_allows,
    fold,
    is_opt_in,
    is_opt_out,
    is_own_number,
    keyword_of,
    loop_guard_allows,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("INFO please", "info"),
        ("Info! what are your hours", "info"),
        ("  info\tnow", "info"),
        ("ÍNFO", "info"),
        ("¿Info?", "info"),
        ("ＩＮＦＯ", "info"),
        ("Straße 5", "strasse"),
        ("", ""),
        ("   ", ""),
        ("!!!", ""),
        ("STOP.", "stop"),
        ("order-42 ok", "order-42"),
    ],
)
def test_keyword_of(body: str, keyword: str) -> None:
    """keyword_of is the first word, case- and accent-folded, without surrounding punctuation."""
    assert keyword_of(body) == keyword


def test_fold_strips_accents_and_case() -> None:
    """fold compares "Éte" and "ETE" equal."""
    assert fold("Éte") == fold("ETE") == "ete"


@pytest.mark.parametrize(
    ("number", "alphanumeric"),
    [("DHL", True), ("Vodafone", True), ("+4915752982212", False), ("+49 (157) 52-98", False),
     ("12345", False), ("Info24", True)],
)
def test_is_alphanumeric_sender(number: str, alphanumeric: bool) -> None:
    """A sender id containing letters is alphanumeric; digits and separators are a number."""
    assert is_alphanumeric_sender(number) is alphanumeric


@pytest.mark.parametrize(
    ("number", "normal"),
    [("+49 157 52-98.22(12)", "+4915752982212"), ("VodaFone", "vodafone"), ("+49/30 1", "+49301")],
)
def test_normalize_number(number: str, normal: str) -> None:
    """normalize_number drops visual separators and case."""
    assert normalize_number(number) == normal


@pytest.mark.parametrize(
    ("number", "own", "expected"),
    [("+49 1575 2982212", ("+4915752982212",), True), ("+4915752982213", ("+4915752982212",), False),
     ("+4915752982212", (), False)],
)
def test_is_own_number(number: str, own: tuple[str, ...], expected: bool) -> None:
    """is_own_number compares against the gateway's SIM numbers without separators."""
    assert is_own_number(number, own, "DE") is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [("STOP", True), ("stop!", True), ("Stop sending these", True), ("unsubscribe", True), ("Stöp", True),
     ("STOPPED", False), ("please stop", False), ("", False), ("START", False)],
)
def test_is_opt_out(body: str, expected: bool) -> None:
    """is_opt_out holds when the first word is an opt-out keyword."""
    assert is_opt_out(body, SafetyConfig()) is expected


@pytest.mark.parametrize(("body", "expected"), [("START", True), ("unstop", True), ("STOP", False)])
def test_is_opt_in(body: str, expected: bool) -> None:
    """is_opt_in holds when the first word is an opt-in keyword."""
    assert is_opt_in(body, SafetyConfig()) is expected


def test_opt_out_uses_configured_keywords() -> None:
    """is_opt_out uses the configured keyword list."""
    assert is_opt_out("Arrêt", SafetyConfig(opt_out_keywords=("ARRET",)))


@pytest.mark.parametrize(("count", "allowed"), [(0, True), (19, True), (20, False), (21, False)])
def test_loop_guard_refuses_the_21st_identical_text(count: int, allowed: bool) -> None:
    """With the default 20/5m, a 21st identical text (20 already sent) is refused."""
    assert loop_guard_allows(count, SafetyConfig().loop_limit) is allowed


def test_loop_guard_uses_the_configured_count() -> None:
    """loop_guard_allows compares with the Rate's count."""
    assert not loop_guard_allows(1, Rate(1, 60.0))


@pytest.mark.parametrize(
    ("last", "allowed"),
    [(None, True), (NOW - timedelta(minutes=5), True), (NOW - timedelta(minutes=4, seconds=59), False),
     (NOW, False), (NOW + timedelta(minutes=1), False)],
)
def test_cooldown_allows(last: datetime | None, allowed: bool) -> None:
    """An auto-reply is allowed once the cooldown has fully passed since the last one."""
    assert cooldown_allows(last, NOW, 300.0) is allowed


@pytest.mark.parametrize("refusal", list(Refusal))
def test_every_refusal_has_a_message(refusal: Refusal) -> None:
    """Each refusal reason carries a sentence for people."""
    assert refusal.message and refusal.message[0].islower()


def test_refusal_values_are_stable() -> None:
    """The refusal values are the names the store and API record."""
    assert [r.value for r in Refusal] == ["opted_out", "loop_guard", "cooldown", "own_number", "alphanumeric"]
