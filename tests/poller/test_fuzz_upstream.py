"""Whole getallsms answers of any shape, polled by the real poller into the real pipeline and store.

Good rows (a usable id and date, any text, any year, mistyped optional fields) each become exactly one
event; odd rows (no usable id or date, not an object) are skipped; polling never stops, the cursor never
passes now, and health reports every poll that failed.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import pytest
from hostile_inputs import WHOLE_PATH, any_text, json_scalars, json_values, readable
from hypothesis import given
from hypothesis import strategies as st
from poller_support import TEST_POLL, FakeUpstream, Harness, MakeHarness

from bridge.poller import CURSOR

NOT_UTF8 = "\u2603not-utf8\u2603"  # replaced by bytes that are not UTF-8 once the answer is encoded
GOOD_IDS = itertools.count(10**12)  # ids unique over every example, whatever hypothesis replays

# Dates of any year that has an instant in UTC, as the upstream writes them or as PHP DateTime objects.
_moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


def _ymd(d: datetime) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"


_dates = st.one_of(
    _moments.map(_ymd),
    _moments.map(lambda d: {"date": _ymd(d) + ".000000", "timezone_type": 3, "timezone": "Europe/Paris"}),
    _moments.map(lambda d: f"{d.day:02d}.{d.month:02d}.{d.year:04d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"),
)
_optional_fields = st.dictionaries(
    st.sampled_from(("deviceid", "sim", "customerid", "statustitle", "urgent", "senttime", "timetosend", "paketid")),
    json_values, max_size=4)
_bodies = st.one_of(any_text, st.just(NOT_UTF8), any_text.map(lambda text: text + NOT_UTF8))


@st.composite
def good_rows(draw: st.DrawFn) -> dict[str, Any]:
    """An incoming message the bridge must read: usable id and date; any text; other fields of any type."""
    row = draw(_optional_fields)
    row.update(status=draw(st.sampled_from((5, "5", 5.0))), created=draw(_dates), body=draw(_bodies),
               sendto=draw(st.one_of(st.just(" 4917642111111"), json_scalars)))
    return row


_unusable_ids = st.one_of(st.sampled_from((2**63, 2**70, -(2**70), 1e20, 1e300, "abc", "", None, [], {}, "1e400")),
                          st.integers(min_value=2**63, max_value=2**200))
_unreadable_dates = st.sampled_from((None, "", "yesterday", [], {}, {"date": 5}, "0001-01-01 00:00:00",
                                     {"date": "9999-12-31 23:59:59.000000", "timezone": "-12:00"}))
odd_rows = st.one_of(
    st.builds(lambda row, sms_id: {**row, "id": sms_id}, good_rows(), _unusable_ids),
    st.builds(lambda row, date: {**row, "created": date}, good_rows(), _unreadable_dates),
    st.builds(lambda row: {k: v for k, v in row.items() if k != "created"}, good_rows()),
    json_scalars, st.lists(json_scalars, max_size=3),
)
answers = st.lists(st.one_of(good_rows().map(lambda row: ("good", row)), odd_rows.map(lambda row: ("odd", row))),
                   max_size=6)


def encode(rows: list[dict[str, Any] | Any]) -> bytes:
    """The answer's bytes: JSON with escapes for every non-ASCII character, NOT_UTF8 as two bytes that are not."""
    raw = json.dumps({"error": 0, "message": "OK", "smss": rows}).encode()
    return raw.replace(json.dumps(NOT_UTF8)[1:-1].encode(), b"\xff\xfe")


def expected_body(row: dict[str, Any]) -> str:
    """The text the bridge must record for a good row's body."""
    body = readable(row["body"]) if isinstance(row["body"], str) else row["body"]
    return body.replace(NOT_UTF8, "\ufffd\ufffd")


@pytest.fixture
async def fake_upstream() -> FakeUpstream:
    """An upstream whose getallsms answer each example sets."""
    return FakeUpstream()


@pytest.fixture
async def polling(make_harness: MakeHarness, fake_upstream: FakeUpstream) -> Harness:
    """A bridge polling the fake upstream, past its first poll (so no row is history)."""
    bridge = await make_harness(upstream=fake_upstream)
    assert (await bridge.poller.poll_once()).ok
    return bridge


@WHOLE_PATH
@given(answer=answers, garbage=st.booleans())
async def test_any_getallsms_answer_gives_one_event_per_good_row(
        polling: Harness, fake_upstream: FakeUpstream, answer: list[tuple[str, Any]], garbage: bool) -> None:
    """Every good row of any answer becomes exactly one event with its text read as the bridge reads it, odd
    rows are skipped, polling never stops, the cursor stays at or before now, and a failed poll shows in health."""
    rows = [{**row, "id": next(GOOD_IDS)} if kind == "good" else row for kind, row in answer]
    good = {row["id"]: expected_body(row) for (kind, _), row in zip(answer, rows) if kind == "good"}
    before = {e["sms"]["id"] for e in await polling.events()}
    if garbage:  # an answer that is no answer first: the poll fails, health says so, and nothing is lost
        fake_upstream.answer = b'{"error":0,"smss":{"1":'
        assert not (await polling.poller.poll_once()).ok
        assert polling.poller.health().failing_since is not None
        polling.advance(TEST_POLL.interval * 8)
    fake_upstream.answer = encode(rows)
    for _ in range(2):  # the same rows again: nothing is emitted twice
        assert (await polling.poller.poll_once()).ok
        assert polling.poller.health().failing_since is None
        assert float(await polling.store.get_cursor(CURSOR) or "-inf") <= polling.clock()
        polling.advance(TEST_POLL.interval)
    events = [e for e in await polling.events() if e["sms"]["id"] not in before]
    assert sorted(e["sms"]["id"] for e in events) == sorted(good)
    assert all(e["type"] == "sms.received" and e["sms"]["body"] == good[e["sms"]["id"]] for e in events)

