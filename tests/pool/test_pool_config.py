"""The `pool:` section: members, strategy and failover, and its errors located as file:line: key.path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from config_issues import BASE, issues
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import ConfigError, load_config
from bridge.pool import Member, Strategy


def test_pool_members_strategy_and_failover_load(write_config: Callable[[str], Path]) -> None:
    """A pool reads its members with their limits, its strategy and failover."""
    path = write_config(BASE + """\
pool:
  strategy: round_robin
  failover: true
  members:
    - {device_id: 1576, sim: 0, daily_limit: 400, monthly_recipients: 240}
    - {device_id: 1576, sim: 1, daily_limit: 400}
    - {device_id: 1297}
""")
    pool = load_config(path, env={}).pool
    assert pool is not None
    assert pool.strategy is Strategy.ROUND_ROBIN and pool.failover is True
    assert pool.members == (Member(1576, 0, 400, 240), Member(1576, 1, 400), Member(1297, 0))


def test_pool_defaults_to_sticky_without_failover(write_config: Callable[[str], Path]) -> None:
    """Without strategy and failover a pool is sticky and does not fail over; without pool there is none."""
    pool = load_config(write_config(BASE + "pool:\n  members: [{device_id: 7}]\n"), env={}).pool
    assert pool is not None and pool.strategy is Strategy.STICKY and pool.failover is False
    assert load_config(write_config(BASE), env={}).pool is None


@pytest.mark.parametrize(("yaml", "expected"), [
    ("pool:\n  strategy: random\n  members: [{device_id: 1}]\n",
     "rules.yaml:6: pool.strategy: unknown strategy 'random' (one of: sticky, round_robin)"),
    ("pool:\n  members: []\n", "rules.yaml:6: pool.members: a pool needs at least one member"),
    ("pool:\n  failover: true\n", "rules.yaml:5: pool: missing key 'members'"),
    ("pool:\n  members:\n    - {sim: 1}\n", "rules.yaml:7: pool.members[0]: missing key 'device_id'"),
    ("pool:\n  members:\n    - {device_id: 1, sim: 2}\n",
     "rules.yaml:7: pool.members[0].sim: must be 0 or 1 (the SIM slot)"),
    ("pool:\n  members:\n    - {device_id: 1, daily_limit: 0}\n",
     "rules.yaml:7: pool.members[0].daily_limit: must be 1 or more"),
    ("pool:\n  members:\n    - {device_id: 1, monthly: 5}\n",
     "rules.yaml:7: pool.members[0].monthly: unknown key (one of: device_id, sim, daily_limit, monthly_recipients)"),
    ("pool:\n  members:\n    - {device_id: 1}\n    - {device_id: 1, sim: 0}\n",
     "rules.yaml:8: pool.members[1]: device 1 SIM 0 is listed twice"),
    ("pool:\n  members: {device_id: 1}\n", "rules.yaml:6: pool.members: expected a list, got a mapping"),
])
def test_bad_pool_keys_are_located(write_config: Callable[[str], Path], yaml: str, expected: str) -> None:
    """Each mistake in a pool is reported once with its line and key path."""
    assert issues(write_config(BASE + yaml)) == [expected]


MEMBER_VALUES = st.one_of(st.integers(-3, 3), st.text(max_size=5), st.booleans(), st.none(),
                          st.lists(st.integers(), max_size=2))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.dictionaries(st.sampled_from(["device_id", "sim", "daily_limit", "monthly_recipients", "x"]),
                       MEMBER_VALUES, max_size=5))
def test_any_member_loads_or_is_refused_with_a_location(write_config: Callable[[str], Path],
                                                        member: dict[str, object]) -> None:
    """Whatever a member holds, the config loads as a valid pool or every error names pool.members."""
    path = write_config(BASE + f"pool:\n  members:\n    - {json.dumps(member)}\n")
    try:
        pool = load_config(path, env={}).pool
    except ConfigError as exc:
        assert all(issue.path.startswith("pool.members[0]") and issue.line == 7 for issue in exc.errors)
        return
    assert pool is not None
    (loaded,) = pool.members
    assert loaded.device_id >= 1 and loaded.sim in (0, 1)
