"""Quiet hours, pure: when a message due at some instant may go out to someone somewhere."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from delivery.quiet_hours import WorkingHours, deliver_at

NEW_YORK = ZoneInfo("America/New_York")
JAKARTA = ZoneInfo("Asia/Jakarta")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[misc]


def test_inside_working_hours_goes_now() -> None:
    assert deliver_at(ny(2027, 1, 11, 8, 0), "America/New_York") is None
    assert deliver_at(ny(2027, 1, 11, 19, 59), "America/New_York") is None


def test_evening_waits_for_next_morning_in_the_recipients_zone() -> None:
    # 10:00 in Jakarta is 22:00 the evening before in New York.
    due = datetime(2027, 1, 12, 10, 0, tzinfo=JAKARTA)
    at = deliver_at(due, "America/New_York")
    assert at == ny(2027, 1, 12, 8, 0)
    assert at is not None and at.tzinfo is JAKARTA  # same zone as given, same instant
    # For the Jakarta side the same instant is mid-morning: no wait.
    assert deliver_at(due, "Asia/Jakarta") is None


def test_closing_time_itself_is_closed_and_early_morning_waits_the_same_day() -> None:
    assert deliver_at(ny(2027, 1, 11, 20, 0), "America/New_York") == ny(2027, 1, 12, 8, 0)
    assert deliver_at(ny(2027, 1, 11, 3, 15), "America/New_York") == ny(2027, 1, 11, 8, 0)


def test_opening_stays_at_local_eight_across_daylight_saving() -> None:
    # 14 March 2027: clocks go forward in New York overnight.
    at = deliver_at(ny(2027, 3, 13, 23, 0), "America/New_York")
    assert at == ny(2027, 3, 14, 8, 0)
    assert at is not None and at.astimezone(UTC).hour == 12  # EDT now, not 13:00 UTC (EST)


def test_opening_inside_a_skipped_hour_moves_past_the_gap() -> None:
    hours = WorkingHours(opens=time(2, 30), closes=time(20, 0))
    at = deliver_at(ny(2027, 3, 14, 0, 30), "America/New_York", hours)
    assert at is not None
    assert at.astimezone(NEW_YORK).time() == time(3, 30)
    assert at.astimezone(UTC) == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)


def test_configured_windows_including_across_midnight() -> None:
    night = WorkingHours(opens=time(22, 0), closes=time(6, 0))
    assert deliver_at(ny(2027, 1, 11, 23, 0), "America/New_York", night) is None
    assert deliver_at(ny(2027, 1, 11, 5, 59), "America/New_York", night) is None
    assert deliver_at(ny(2027, 1, 11, 12, 0), "America/New_York", night) == ny(2027, 1, 11, 22)
    short = WorkingHours(opens=time(9, 30), closes=time(17, 0))
    assert deliver_at(ny(2027, 1, 11, 17, 0), "America/New_York", short) == ny(
        2027, 1, 12, 9, 30)


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="different times"):
        WorkingHours(opens=time(8), closes=time(8))
    with pytest.raises(ValueError, match="timezone-aware"):
        deliver_at(datetime(2027, 1, 1, 9), "America/New_York")
