"""A background loop's failures are logged once per streak, and its recovery once."""

from __future__ import annotations

import logging

import pytest

from bridge.logs import FailureStreak

LOGGER = "bridge.test.streak"


@pytest.fixture
def streak() -> FailureStreak:
    """A streak logging to the test logger."""
    return FailureStreak(logging.getLogger(LOGGER), "worker: a pass")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages the test logger wrote."""
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_the_same_error_pass_after_pass_is_logged_once(streak: FailureStreak,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Ten passes failing with one error give one line."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(10):
        streak.failed(OSError("disk gone"), 5.0, expected=True)
    assert len(lines(caplog)) == 1 and "disk gone" in lines(caplog)[0]


def test_an_unexpected_error_is_logged_with_its_traceback(streak: FailureStreak,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected failure is an ERROR carrying the exception, so its traceback reaches the log."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    streak.failed(KeyError("x"), 5.0)
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_a_new_error_within_a_streak_is_logged_too(streak: FailureStreak,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A different error in the middle of a streak is news and gets its own line."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    streak.failed(OSError("disk gone"), 5.0, expected=True)
    streak.failed(OSError("disk gone"), 5.0, expected=True)
    streak.failed(OSError("permission denied"), 5.0, expected=True)
    assert len(lines(caplog)) == 2 and "permission denied" in lines(caplog)[1]


def test_the_recovery_is_logged_once_with_the_count_and_a_later_failure_is_news(
        streak: FailureStreak, caplog: pytest.LogCaptureFixture) -> None:
    """The first pass that works after failures says so with their count; the same error later is logged again."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(3):
        streak.failed(OSError("disk gone"), 5.0, expected=True)
    streak.succeeded()
    streak.succeeded()
    streak.failed(OSError("disk gone"), 5.0, expected=True)
    assert lines(caplog)[1:] == ["worker: a pass works again after 3 failed pass(es)", lines(caplog)[0]]
