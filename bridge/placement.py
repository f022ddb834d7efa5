"""The device pool inside the sender's claim: each claimed recipient placed on a member, counts kept in the store.

The choice itself is `bridge.pool.choose` (pure); this module reads what it needs in the claim's transaction
(members' counts for today and this month, devices' online state, sticky assignments) and writes back what the
claim decided (the recipients' members, the counts, new assignments), so that the counts and the SMS handed
upstream are committed together and replicas placing sends at once never both take a member's last place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bridge.config import PoolConfig
from bridge.device_identity import listed_id
from bridge.pool import Key, Member, PoolState, Request, Strategy, Usage, choose, day_of, month_of, next_midnight
from bridge.store import Row, Store, Tx

# Final failed statuses (DESIGN section 9): the SMS will not go out; a failover may send it on another member.
FAILED_STATUSES = frozenset({9, 10, 11, 12, 100, 101})


@dataclass(frozen=True, slots=True)
class MemberReport:
    """A member as `/healthz`, `/metrics`, `sms-bridge pool` and the dashboard show it."""

    member: Member
    online: bool
    sent_today: int
    recipients_this_month: int

    def to_json(self) -> dict[str, object]:
        """The member as `/healthz` and `sms-bridge pool --json` show it."""
        m = self.member
        return {"device_id": m.device_id, "sim": m.sim, "state": self.state, "online": self.online,
                "sent_today": self.sent_today, "daily_limit": m.daily_limit,
                "recipients_this_month": self.recipients_this_month, "monthly_recipients": m.monthly_recipients}

    @property
    def state(self) -> str:
        """`usable`, `offline`, `daily_limit` or `monthly_recipients` (full for new recipients)."""
        m = self.member
        if not self.online:
            return "offline"
        if m.daily_limit is not None and self.sent_today >= m.daily_limit:
            return "daily_limit"
        if m.monthly_recipients is not None and self.recipients_this_month >= m.monthly_recipients:
            return "monthly_recipients"
        return "usable"


async def member_reports(store: Store, pool: PoolConfig, zone: ZoneInfo, now: float) -> list[MemberReport]:
    """Every member of `pool` with its online state and today's and this month's counts, in config order."""
    counts = await store.pool_counts(day_of(now, zone), month_of(now, zone))
    async with store.reading() as db:
        devices = await db.device_rows()
    listed = listed_ids(devices, pool)
    reports = []
    for member in pool.members:
        c = counts.get(member.key)
        reports.append(MemberReport(member, _online(devices, listed.get(member.device_id, member.device_id)),
                                    c.sent_today if c else 0, c.recipients_this_month if c else 0))
    return reports


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the sender knows of a claimed recipient that the pool needs."""

    id: int
    number: str  # the likeliest reading (E.164 where valid): limits count numbers, not spellings
    send_device: int | None
    send_sim: int | None
    is_reply: bool
    placed: Key | None  # the member an earlier pass placed it on (kept: it was handed over there before)
    avoid: Key | None


@dataclass(slots=True)
class Plan:
    """The pool as one claim sees it, and what the claim decided so far."""

    pool: PoolConfig
    state: PoolState
    assignments: dict[str, Key]
    day: str
    month: str
    wake_at: float
    listed: Mapping[int, int] = field(default_factory=dict)  # a member's device id -> the id it is listed under
    members: dict[int, Key] = field(default_factory=dict)
    assigned: dict[str, Key] = field(default_factory=dict)
    counted: list[tuple[int, int, str]] = field(default_factory=list)

    def manages(self, w: Wanted) -> bool:
        """True when the pool places `w`: its send named no device, or it is a reply received on a member."""
        if w.placed is not None:
            return True
        if w.send_device is None:
            return True
        return self.state.member(self._receiving(w)) is not None

    def place(self, w: Wanted) -> Member | None:
        """The member `w` goes out on, or None while no member is usable (it waits: pool_exhausted)."""
        if w.placed is not None:
            member = self.state.member(w.placed)
            return member if member is not None else Member(*w.placed)
        prefer = self._receiving(w)
        sim = w.send_sim if w.send_device is None else None
        request = Request(w.number, assigned=self.assignments.get(w.number), prefer=prefer, avoid=w.avoid, sim=sim)
        return choose(self.state, self.pool.strategy, request)

    def take(self, w: Wanted, key: Key) -> None:
        """Note that `w` is handed upstream on `key` in this claim (counted when `key` is a member)."""
        key = self.member_key(*key)
        member = self.state.member(key)
        if self.manages(w):
            self.members[w.id] = key
            preferred = self._receiving(w) == key
            if self.pool.strategy is Strategy.STICKY and not preferred and self.assignments.get(w.number) != key:
                self.assignments[w.number] = self.assigned[w.number] = key
        if member is not None:
            self.state = self.state.after(member, w.number)
            self.counted.append((key[0], key[1], w.number))

    def upstream_device(self, member: Member) -> int:
        """The device id an SMS on `member` is handed upstream with: the one its phone is listed under now."""
        return self.listed.get(member.device_id, member.device_id)

    def member_key(self, device_id: int, sim: int) -> Key:
        """The member key of an SMS on (device_id, sim): a phone listed under a new id is still its member."""
        return (_configured(self.listed).get(device_id, device_id), sim)

    def _receiving(self, w: Wanted) -> Key | None:
        """The member key of the device and SIM that received the SMS a reply answers (None: not a reply)."""
        if not w.is_reply or w.send_device is None:
            return None
        return self.member_key(w.send_device, w.send_sim or 0)

    async def commit(self, db: Tx, now: float) -> None:
        """Write the claim's placements, counts and new sticky assignments in the claim's transaction."""
        await db.set_recipient_members([(rid, d, s) for rid, (d, s) in self.members.items()], now)
        await db.assign_pool([(number, d, s) for number, (d, s) in self.assigned.items()], now)
        await db.count_pool_sends(self.counted, self.day, self.month)


class Placement:
    """Places the sender's claimed recipients on the pool's members."""

    def __init__(self, pool: PoolConfig, zone: ZoneInfo, recheck: float) -> None:
        self.pool = pool
        self._zone = zone
        self._recheck = recheck  # how soon a waiting recipient looks again (devices come back online)
        self._listed: dict[int, int] = {}  # as the last claim read it: a member's device id -> its id now

    async def plan(self, db: Tx, numbers: Iterable[str], devices: Mapping[int, Row], now: float) -> Plan:
        """The pool's state for a claim of recipients to `numbers`, read in the claim's transaction (`devices`:
        the stored devices, as the claim read them)."""
        numbers = list(numbers)
        await db.lock_pool()
        day, month = day_of(now, self._zone), month_of(now, self._zone)
        counts = await db.pool_counts(day, month, numbers)
        self._listed = listed_ids(devices, self.pool)
        usage: dict[Key, Usage] = {}
        for member in self.pool.members:
            c = counts.get(member.key)
            online = _online(devices, self._listed.get(member.device_id, member.device_id))
            usage[member.key] = Usage(online, c.sent_today, c.recipients_this_month, c.known_numbers) if c \
                else Usage(online)
        wake_at = min(next_midnight(now, self._zone), now + self._recheck)
        return Plan(self.pool, PoolState(self.pool.members, usage), await db.pool_assignments(numbers), day, month,
                    wake_at, dict(self._listed))

    def members_of(self, sends: Iterable[tuple[int | None, int | None]]) -> list[Key]:
        """The members among `sends`, (device_id, sim) as handed upstream, whose counts may be taken back."""
        keys = {m.key for m in self.pool.members}
        configured = _configured(self._listed)
        members = [(configured.get(d, d), s) for d, s in sends if d is not None and s is not None]
        return [key for key in members if key in keys]

    def day(self, ts: float) -> str:
        """The local day `ts` counts on."""
        return day_of(ts, self._zone)

    @property
    def fails_over(self) -> bool:
        """True when failed SMS go out once more on another member (failover on, and another member exists)."""
        return self.pool.failover and len(self.pool.members) > 1


def listed_ids(devices: Mapping[int, Row], pool: PoolConfig) -> dict[int, int]:
    """The members' device ids whose phones are listed under another id now (signed in again), to that id."""
    listed = {m.device_id: listed_id(devices, m.device_id) for m in pool.members}
    return {old: new for old, new in listed.items() if new != old}


def _configured(listed: Mapping[int, int]) -> dict[int, int]:
    """The reverse of `listed`: a phone's id now -> the member's device id."""
    return {new: old for old, new in listed.items()}


def _online(devices: Mapping[int, Row], device_id: int) -> bool:
    """The device's online state as the poller last stored it; a device never listed yet counts as online."""
    device = devices.get(device_id)
    return device is None or bool(device["online"])
