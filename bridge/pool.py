"""Which pool member (device and SIM) a send goes out on: pure choice over members and their usage (no I/O).

A member is usable while its device is online, its `daily_limit` (SMS handed upstream since local midnight) is
not reached, and a recipient new to it this calendar month does not exceed its `monthly_recipients`. `sticky`
keeps a recipient on the member it was assigned while that member is usable, and places a new (or displaced)
recipient by rendezvous hashing of its number over the usable members, so every replica agrees without asking
another. `round_robin` takes the usable member that handed over fewest SMS today, first in the list on a tie:
members in turn, the same on every replica and after a restart.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Key = tuple[int, int]  # (device_id, sim)

EXHAUSTED = "pool_exhausted"  # the reason a waiting recipient shows while no member is usable


class Strategy(enum.StrEnum):
    """How a pool places recipients on its members."""

    STICKY = "sticky"
    ROUND_ROBIN = "round_robin"


@dataclass(frozen=True, slots=True)
class Member:
    """One device and SIM of the pool, with the carrier's limits (None: no limit)."""

    device_id: int
    sim: int = 0
    daily_limit: int | None = None
    monthly_recipients: int | None = None

    @property
    def key(self) -> Key:
        """The (device_id, sim) pair that names the member."""
        return (self.device_id, self.sim)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a member did so far: online, SMS handed upstream today, distinct recipients this month, and
    which of the numbers at hand are already among them."""

    online: bool = True
    sent_today: int = 0
    recipients_this_month: int = 0
    known_numbers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PoolState:
    """The pool's members with their usage, as one claim sees them."""

    members: tuple[Member, ...]
    usage: Mapping[Key, Usage]
    by_key: Mapping[Key, Member] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.by_key:  # built once per claim; each `after` hands it on
            object.__setattr__(self, "by_key", {m.key: m for m in self.members})

    def of(self, member: Member) -> Usage:
        """The usage of `member` (an unseen member is online and unused)."""
        return self.usage.get(member.key, Usage())

    def usable(self, member: Member, number: str) -> bool:
        """True when `member` may take one more SMS to `number` now."""
        usage = self.of(member)
        if not usage.online:
            return False
        if member.daily_limit is not None and usage.sent_today >= member.daily_limit:
            return False
        if member.monthly_recipients is not None and number not in usage.known_numbers:
            return usage.recipients_this_month < member.monthly_recipients
        return True

    def after(self, member: Member, number: str) -> PoolState:
        """The state once `member` has taken one more SMS to `number`."""
        usage = self.of(member)
        new = number not in usage.known_numbers
        counted = replace(usage, sent_today=usage.sent_today + 1,
                          recipients_this_month=usage.recipients_this_month + int(new),
                          known_numbers=usage.known_numbers | {number})
        return PoolState(self.members, {**self.usage, member.key: counted}, self.by_key)

    def member(self, key: Key | None) -> Member | None:
        """The member named by `key`, or None when it is not one of the pool's."""
        return None if key is None else self.by_key.get(key)


@dataclass(frozen=True, slots=True)
class Request:
    """What one recipient asks of the pool.

    `assigned`: the member a sticky recipient had; `prefer`: the member a reply should go out on (the one that
    received the SMS); `avoid`: a member that must not be chosen (a failed attempt's); `sim`: only members with
    this SIM slot.
    """

    number: str
    assigned: Key | None = None
    prefer: Key | None = None
    avoid: Key | None = None
    sim: int | None = None


def choose(state: PoolState, strategy: Strategy, request: Request) -> Member | None:
    """The member to send `request` on, or None when no member is usable (the send waits: pool_exhausted).

    The preferred or assigned member is looked at alone first: a recipient that keeps its member costs the same
    whatever the pool's size."""

    def fits(m: Member) -> bool:
        return m.key != request.avoid and (request.sim is None or m.sim == request.sim) \
            and state.usable(m, request.number)

    for wanted in (request.prefer, request.assigned if strategy is Strategy.STICKY else None):
        member = state.member(wanted)
        if member is not None and fits(member):
            return member
    usable = [m for m in state.members if fits(m)]
    if not usable:
        return None
    if strategy is Strategy.STICKY:
        return max(usable, key=lambda m: _weight(request.number, m.key))
    return min(usable, key=lambda m: state.of(m).sent_today)  # the first listed of the fewest: min keeps order


def sticky_order(number: str, members: Iterable[Member]) -> list[Member]:
    """The members in the order sticky placement tries them for `number` (first: where it goes when all are
    usable)."""
    return sorted(members, key=lambda m: _weight(number, m.key), reverse=True)


def _weight(number: str, key: Key) -> int:
    """Rendezvous weight of (number, member): a stable hash, the same in every process and version of Python."""
    digest = hashlib.blake2b(f"{number}|{key[0]}|{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def day_of(ts: float, zone: ZoneInfo) -> str:
    """The local date of `ts` in the account's zone (`2026-11-24`): daily limits count per this day."""
    return datetime.fromtimestamp(ts, zone).date().isoformat()


def month_of(ts: float, zone: ZoneInfo) -> str:
    """The local calendar month of `ts` (`2026-11`): monthly recipients count per this month."""
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m")


def next_midnight(ts: float, zone: ZoneInfo) -> float:
    """The Unix time of the next local midnight after `ts`, when daily limits start again."""
    today: date = datetime.fromtimestamp(ts, zone).date()
    return datetime.combine(today + timedelta(days=1), time(), zone).timestamp()
