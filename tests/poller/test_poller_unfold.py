"""Reading the upstream's zone-named dates in the hour repeated when clocks go back."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bridge.gateway.models import Sms, Status
from bridge.poller import unfold

PARIS = ZoneInfo("Europe/Paris")
# 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:10 happens at 00:10 UTC and again at 01:10 UTC.
FIRST_0210 = datetime(2026, 10, 25, 0, 10, tzinfo=ZoneInfo("UTC")).timestamp()
SECOND_0210 = datetime(2026, 10, 25, 1, 10, tzinfo=ZoneInfo("UTC")).timestamp()


def sms_at(local: datetime) -> Sms:
    """An inbound SMS created at `local`."""
    return Sms(62050971, "+4912312312332", "hi", Status.RECEIVED, 5, 1576, local)


@pytest.mark.parametrize(("case", "not_before", "expected"), [
    ("02:10 in a window that starts after its first reading", SECOND_0210 - 300, SECOND_0210),
    ("02:10 in a window that starts before its first reading", FIRST_0210 - 300, FIRST_0210),
    ("an unambiguous time before the window stays as it is", SECOND_0210 + 7200, None),
])
def test_unfold(case: str, not_before: float, expected: float | None) -> None:
    """An ambiguous time is the later instant only when the earlier one lies before the window asked for."""
    local = datetime(2026, 10, 25, 2, 10, tzinfo=PARIS) if expected else datetime(2026, 10, 25, 9, 0, tzinfo=PARIS)
    result = unfold(sms_at(local), not_before)
    assert result.created.timestamp() == (expected if expected else local.timestamp())
