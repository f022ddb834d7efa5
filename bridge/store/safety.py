"""Safety state: the opt-out list, the loop guard's log of recent texts, auto-reply cooldowns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable


class SafetyOps(ABC):
    """Safety statements inside a transaction. Numbers are keyed as `bridge.numbers.number_readings` reads them:
    an opt-out or a cooldown under every reading of a spelling, a loop-guard entry under the likeliest."""

    @abstractmethod
    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """The numbers among `numbers` that are on the opt-out list."""

    @abstractmethod
    async def set_opted_out(self, number: str, opted_out: bool, source: str, now: float) -> None:
        """Put `number` on the opt-out list (kept from its first opt-out) or take it off."""

    @abstractmethod
    async def recent_sends(self, keys: Iterable[tuple[str, str]], since: float) -> dict[tuple[str, str], int]:
        """How many texts went out after `since` under each of `keys`, (number, body hash) pairs; a key with none
        is left out. Only the keys asked for are counted, so the cost follows the batch, not the traffic."""

    @abstractmethod
    async def log_sent(self, entries: Iterable[tuple[str, str]], now: float) -> None:
        """Note texts going out now as (number, body hash), for the loop guard."""

    @abstractmethod
    async def last_reply_ts(self, rule: str, number: str) -> float | None:
        """When `rule` last auto-replied to `number` (the reply cooldown), or None."""

    @abstractmethod
    async def note_reply(self, rule: str, number: str, now: float) -> None:
        """Start the reply cooldown of `rule` for `number`."""

    @abstractmethod
    async def renumber(self, region: str | None) -> None:
        """Re-key the numbers an older bridge stored as they were spelled (the schema upgrade to version 7)."""
