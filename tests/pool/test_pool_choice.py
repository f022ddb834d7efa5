"""bridge.pool: which member a recipient goes out on, over any members, limits and usage."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.pool import (Key, Member, PoolState, Request, Strategy, Usage, choose, day_of, month_of, next_midnight,
                         sticky_order)

NUMBERS = st.from_regex(r"\+49157[0-9]{8}", fullmatch=True)
LIMITS = st.none() | st.integers(1, 6)


@st.composite
def pools(draw: st.DrawFn) -> PoolState:
    """Up to five distinct members with random limits and usage (some offline, some at their limits)."""
    keys = draw(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 1)), min_size=1, max_size=5, unique=True))
    members = tuple(Member(d, s, draw(LIMITS), draw(LIMITS)) for d, s in keys)
    usage = {
        m.key: Usage(draw(st.booleans()), draw(st.integers(0, 7)), draw(st.integers(0, 7)),
                     frozenset(draw(st.lists(NUMBERS, max_size=3))))
        for m in members if draw(st.booleans())
    }
    return PoolState(members, usage)


def requests(state: PoolState) -> st.SearchStrategy[Request]:
    keys = st.none() | st.sampled_from([m.key for m in state.members]) | st.just((99, 0))
    return st.builds(Request, NUMBERS, keys, keys, keys, st.none() | st.integers(0, 1))


@given(st.data(), pools(), st.sampled_from(Strategy))
def test_never_picks_an_unusable_member(data: st.DataObject, state: PoolState, strategy: Strategy) -> None:
    """The chosen member is online, under its limits, not the avoided one and on the asked SIM; None only
    when no such member exists."""
    request = data.draw(requests(state))
    chosen = choose(state, strategy, request)
    allowed = [m for m in state.members if state.usable(m, request.number) and m.key != request.avoid
               and request.sim in (None, m.sim)]
    if chosen is None:
        assert allowed == []
    else:
        assert chosen in allowed


@given(pools(), st.sampled_from(Strategy), st.lists(NUMBERS, min_size=1, max_size=40))
def test_never_exceeds_a_limit(state: PoolState, strategy: Strategy, numbers: list[str]) -> None:
    """However many sends are placed one after another, no member passes its daily or monthly limit."""
    start = state
    for number in numbers:
        chosen = choose(state, strategy, Request(number))
        if chosen is None:
            continue
        state = state.after(chosen, number)
    for member in state.members:
        before, after = start.of(member), state.of(member)
        if member.daily_limit is not None and after.sent_today > before.sent_today:
            assert after.sent_today <= member.daily_limit
        if member.monthly_recipients is not None and after.recipients_this_month > before.recipients_this_month:
            assert after.recipients_this_month <= member.monthly_recipients


@given(pools(), NUMBERS)
def test_sticky_placement_is_a_function_of_the_number(state: PoolState, number: str) -> None:
    """A new recipient lands on the same member whatever order the members are listed in."""
    shuffled = PoolState(tuple(reversed(state.members)), state.usage)
    assert choose(state, Strategy.STICKY, Request(number)) == choose(shuffled, Strategy.STICKY, Request(number))


@given(pools(), NUMBERS, st.data())
def test_sticky_keeps_an_assigned_member_while_usable(state: PoolState, number: str, data: st.DataObject) -> None:
    """A recipient assigned to a usable member stays on it."""
    member = data.draw(st.sampled_from(state.members))
    chosen = choose(state, Strategy.STICKY, Request(number, assigned=member.key))
    if state.usable(member, number):
        assert chosen == member
    else:
        assert chosen != member


@given(st.data(), pools(), st.sampled_from(Strategy))
def test_picks_the_member_the_rules_name(data: st.DataObject, state: PoolState, strategy: Strategy) -> None:
    """The usable preferred member, else (sticky) the usable assigned one, else sticky's first usable member in
    the number's order, or round_robin's usable member with fewest sends today, first listed on a tie."""
    request = data.draw(requests(state))
    usable = [m for m in state.members if state.usable(m, request.number) and m.key != request.avoid
              and request.sim in (None, m.sim)]
    kept = [m for m in usable if m.key == request.prefer]
    if strategy is Strategy.STICKY:
        kept += [m for m in usable if m.key == request.assigned]
        kept += [m for m in sticky_order(request.number, state.members) if m in usable]
    else:
        fewest = min((state.of(m).sent_today for m in usable), default=0)
        kept += [m for m in usable if state.of(m).sent_today == fewest]
    assert choose(state, strategy, request) == (kept[0] if kept else None)


class _CountedUsage(dict[Key, Usage]):
    """Members' usage that counts how often it is read."""

    reads = 0

    def get(self, key: Key, default: Usage | None = None) -> Usage | None:  # type: ignore[override]
        self.reads += 1
        return super().get(key, default)


@pytest.mark.parametrize(("strategy", "kept_by"), [(Strategy.STICKY, "assigned"), (Strategy.STICKY, "prefer"),
                                                   (Strategy.ROUND_ROBIN, "prefer")])
def test_a_recipient_that_keeps_its_member_costs_the_same_in_a_pool_of_any_size(strategy: Strategy,
                                                                                  kept_by: str) -> None:
    """Placing a recipient on its sticky member, or a reply on the member that received the SMS, looks at that
    member's usage alone, in a pool of fifty as of one."""
    reads = []
    for size in (1, 50):
        members = tuple(Member(1000 + i) for i in range(size))
        usage = _CountedUsage()
        request = Request("+4915700000001", **{kept_by: members[-1].key})
        assert choose(PoolState(members, usage), strategy, request) == members[-1]
        reads.append(usage.reads)
    assert reads == [1, 1]


def test_sticky_moves_a_recipient_only_while_its_member_is_unusable() -> None:
    """With its member offline a recipient goes elsewhere; placed afresh it returns to the same member."""
    a, b = Member(1, 0), Member(2, 0)
    online = PoolState((a, b), {})
    home = choose(online, Strategy.STICKY, Request("+4915700000001"))
    assert home is not None
    offline = PoolState((a, b), {home.key: Usage(online=False)})
    away = choose(offline, Strategy.STICKY, Request("+4915700000001", assigned=home.key))
    assert away is not None and away != home


def test_round_robin_takes_members_in_turn() -> None:
    """round_robin places six sends on three members two each, in list order."""
    members = (Member(1, 0), Member(1, 1), Member(2, 0))
    state = PoolState(members, {})
    order = []
    for i in range(6):
        chosen = choose(state, Strategy.ROUND_ROBIN, Request(f"+491570000000{i}"))
        assert chosen is not None
        order.append(chosen.key)
        state = state.after(chosen, f"+491570000000{i}")
    assert order == [(1, 0), (1, 1), (2, 0)] * 2


def test_daily_limit_overflows_to_the_next_member() -> None:
    """Eight sends with a daily limit of 5 on A: five go to A, three to B."""
    a, b = Member(1, 0, daily_limit=5), Member(2, 0)
    state = PoolState((a, b), {})
    placed = []
    for i in range(8):
        chosen = choose(state, Strategy.STICKY, Request("+4915700000009", prefer=a.key))
        assert chosen is not None
        placed.append(chosen)
        state = state.after(chosen, "+4915700000009")
    assert placed.count(a) == 5 and placed.count(b) == 3


def test_a_known_recipient_does_not_count_against_the_monthly_limit() -> None:
    """A member at its monthly recipient limit still takes numbers it already sent to this month."""
    a = Member(1, 0, monthly_recipients=1)
    state = PoolState((a,), {a.key: Usage(recipients_this_month=1, known_numbers=frozenset({"+4915700000001"}))})
    assert choose(state, Strategy.STICKY, Request("+4915700000001")) == a
    assert choose(state, Strategy.STICKY, Request("+4915700000002")) is None


def test_a_reply_keeps_the_receiving_member_unless_it_is_unusable() -> None:
    """A reply goes out on the member that received the SMS; when that one is offline, on another."""
    a, b = Member(1, 0), Member(2, 0)
    for preferred in (a, b):
        assert choose(PoolState((a, b), {}), Strategy.ROUND_ROBIN, Request("+4915700000001", prefer=preferred.key)) \
            == preferred
    offline = PoolState((a, b), {a.key: Usage(online=False)})
    assert choose(offline, Strategy.STICKY, Request("+4915700000001", prefer=a.key)) == b


def test_days_and_months_are_the_account_zone_s() -> None:
    """Just after midnight in Paris (still the day before in UTC) counts as the new day and month."""
    zone = ZoneInfo("Europe/Paris")
    ts = 1764543600.0 + 60  # 2025-12-01 00:01 in Paris, 2025-11-30 23:01 UTC
    assert day_of(ts, zone) == "2025-12-01"
    assert month_of(ts, zone) == "2025-12"
    assert next_midnight(ts, zone) == 1764543600.0 + 86400
