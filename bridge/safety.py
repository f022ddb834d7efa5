"""Pure safety predicates for replies and sends; the caller loads the data (opt-outs, recent sends) they judge."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from bridge.config import Rate, SafetyConfig
from bridge.numbers import same_number


class Refusal(enum.StrEnum):
    """Why a message to a number is not sent; the value is what the store and the API record."""

    OPTED_OUT = "opted_out"
    LOOP_GUARD = "loop_guard"
    COOLDOWN = "cooldown"
    OWN_NUMBER = "own_number"
    ALPHANUMERIC = "alphanumeric"

    @property
    def message(self) -> str:
        """A sentence for people saying why nothing was sent."""
        return _MESSAGES[self]


_MESSAGES = {
    Refusal.OPTED_OUT: "the recipient opted out of messages",
    Refusal.LOOP_GUARD: "the same text went to this number too often in a short time (loop guard)",
    Refusal.COOLDOWN: "this rule already auto-replied to this sender recently (reply cooldown)",
    Refusal.OWN_NUMBER: "the recipient is one of the gateway's own numbers",
    Refusal.ALPHANUMERIC: "the recipient is an alphanumeric sender id, which cannot receive SMS",
}


def fold(text: str) -> str:
    """Text compared without case or accents: NFKD, combining marks dropped, casefolded ("ÍNFO" -> "info")."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def keyword_of(body: str) -> str:
    """The first word of `body`, folded, with punctuation around it dropped ("Info! please" -> "info")."""
    words = body.split(maxsplit=1)
    if not words:
        return ""
    word = fold(words[0])
    start, end = 0, len(word)
    while start < end and _is_punctuation(word[start]):
        start += 1
    while end > start and _is_punctuation(word[end - 1]):
        end -= 1
    return word[start:end]


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def is_own_number(number: str, own_numbers: Iterable[str], region: str | None) -> bool:
    """True when `number`, however spelled, is one of the gateway's own SIM numbers."""
    return any(same_number(number, own, region) for own in own_numbers)


def is_opt_out(body: str, safety: SafetyConfig) -> bool:
    """True when the first word of `body` is an opt-out keyword (STOP, UNSUBSCRIBE, …)."""
    return _is_keyword(body, safety.opt_out_keywords)


def is_opt_in(body: str, safety: SafetyConfig) -> bool:
    """True when the first word of `body` is an opt-in keyword (START, UNSTOP, …)."""
    return _is_keyword(body, safety.opt_in_keywords)


def _is_keyword(body: str, keywords: Iterable[str]) -> bool:
    word = keyword_of(body)
    return bool(word) and any(keyword_of(k) == word for k in keywords)


def loop_guard_allows(recent_identical_count: int, limit: Rate) -> bool:
    """True while fewer than `limit.count` identical texts went to the number within `limit.per` seconds."""
    return recent_identical_count < limit.count


def cooldown_allows(last_reply_at: datetime | None, now: datetime, cooldown_seconds: float) -> bool:
    """True when no auto-reply went out within the cooldown (a reply stamped in the future blocks too)."""
    return last_reply_at is None or (now - last_reply_at).total_seconds() >= cooldown_seconds
