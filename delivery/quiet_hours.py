"""Quiet hours: a message that falls due outside the recipient's working hours waits for the
next window to open, in the recipient's own time zone.

Pure and clock-free: the caller passes the instant the message fell due (the workflow time of
the decision that caused it, so a retry decides the same) and the recipient's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from delivery.message import MAGIC_LINK

# Sent the moment they are asked for, whatever the hour: someone is waiting for them.
NEVER_DEFERRED = frozenset({MAGIC_LINK})


@dataclass(frozen=True)
class WorkingHours:
    """Local times between which messages go out: ``[opens, closes)``. ``opens > closes`` is
    a window across midnight (a night shift's 22:00-06:00)."""

    opens: time = time(8, 0)
    closes: time = time(20, 0)

    def __post_init__(self) -> None:
        if self.opens == self.closes:
            raise ValueError("working hours must open and close at different times")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("working hours are local times, without a time zone")

    def is_open(self, local: time) -> bool:
        if self.opens < self.closes:
            return self.opens <= local < self.closes
        return local >= self.opens or local < self.closes


DEFAULT_WORKING_HOURS = WorkingHours()


def deliver_at(due: datetime, timezone: str, hours: WorkingHours = DEFAULT_WORKING_HOURS
               ) -> datetime | None:
    """When a message due at ``due`` may go out to someone in ``timezone``: ``None`` if now
    (inside working hours), else the instant the next window opens.

    Local wall-clock arithmetic, so "08:00" is 08:00 on either side of a daylight-saving
    change; an opening time that does not exist that day (skipped by the change) moves to the
    same wall-clock distance past the gap (02:30 becomes 03:30), as calendar software does.
    """
    if due.tzinfo is None:
        raise ValueError("due must be timezone-aware")
    zone = ZoneInfo(timezone)
    local = due.astimezone(zone)
    if hours.is_open(local.time().replace(tzinfo=None)):
        return None
    day = local.date()
    if local.time().replace(tzinfo=None) >= hours.opens:
        day += timedelta(days=1)
    return _first_instant_at_or_after(day, hours.opens, zone).astimezone(due.tzinfo)


def _first_instant_at_or_after(day: date, at: time, zone: ZoneInfo) -> datetime:
    candidate = datetime.combine(day, at, tzinfo=zone)
    # zoneinfo reads a time inside a spring-forward gap with the offset from before the gap;
    # the round trip through UTC turns that into the real instant after the gap.
    return candidate.astimezone(ZoneInfo("UTC")).astimezone(zone)
