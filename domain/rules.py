"""Ground rules of a pairing: how often pairs meet, for how long, about what, and the clock
of the program (goal deadline, mid-point review, end, final-evaluation window).

Pure and clock-free: every function takes the instants it needs as arguments.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Cadence(StrEnum):
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY = "monthly"


class EscalationLadder(BaseModel):
    """What happens when meetings stop: consecutive missed meetings first nudge the pair,
    then escalate to the program coordinator; a long silence may end the pairing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nudge_after_missed: int = Field(default=1, ge=1, le=20)
    escalate_after_missed: int = Field(default=3, ge=1, le=50)
    auto_conclude_after_inactive_days: int | None = Field(default=None, ge=7, le=730)

    @model_validator(mode="after")
    def _escalation_after_nudge(self) -> EscalationLadder:
        if self.escalate_after_missed < self.nudge_after_missed:
            raise ValueError("escalate_after_missed must be >= nudge_after_missed")
        return self


class GroundRules(BaseModel):
    """The agreement every pair in a program works under.

    ``program_length_days`` of ``None`` means an open-ended pairing (meetings continue until
    someone exits); it then has no mid-point review and no final evaluation window.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    program_length_days: int | None = Field(default=182, ge=14, le=3650)
    goal_setting_days: int = Field(default=14, ge=1, le=90)
    goals_required_before_meetings: bool = False
    goal_reminder_days_before_deadline: tuple[int, ...] = (3, 1)
    goal_overdue_reminder_days: int = Field(default=3, ge=1, le=30)

    cadence: Cadence = Cadence.WEEKLY
    meeting_minutes: int = Field(default=60, ge=15, le=240)
    first_meeting_after_days: int = Field(default=7, ge=0, le=60)
    meeting_time: time = time(10, 0)
    meeting_log_grace_hours: int = Field(default=48, ge=1, le=336)
    topics: tuple[str, ...] = Field(min_length=1)

    midpoint_offset_days: int | None = Field(default=None, ge=1)
    midpoint_window_days: int = Field(default=14, ge=1, le=60)
    midpoint_reminder_every_days: int = Field(default=4, ge=1, le=30)

    reminder_lead_hours: int = Field(default=24, ge=1, le=168)
    escalation: EscalationLadder = EscalationLadder()
    final_evaluation_window_days: int = Field(default=14, ge=1, le=90)
    final_reminder_every_days: int = Field(default=4, ge=1, le=30)
    timezone: str = "Asia/Jakarta"

    @field_validator("topics")
    @classmethod
    def _topics_unique_and_named(cls, topics: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(t.strip() for t in topics)
        if any(not t for t in cleaned):
            raise ValueError("topics must not be blank")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("topics must be unique")
        return cleaned

    @field_validator("goal_reminder_days_before_deadline")
    @classmethod
    def _reminders_positive(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 0 for d in days):
            raise ValueError("goal reminders are days before the deadline, so >= 0")
        return tuple(sorted(set(days), reverse=True))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {name!r}") from exc
        return name

    @model_validator(mode="after")
    def _windows_fit(self) -> GroundRules:
        length = self.program_length_days
        if length is None:
            return self
        if self.goal_setting_days >= length:
            raise ValueError("goal_setting_days must be shorter than the program")
        if self.midpoint_offset_days is not None and self.midpoint_offset_days >= length:
            raise ValueError("midpoint_offset_days must fall inside the program")
        return self

    # --- the program clock, relative to the pairing's start ---------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def goal_deadline(self, started_at: datetime) -> datetime:
        return started_at + timedelta(days=self.goal_setting_days)

    def program_end(self, started_at: datetime) -> datetime | None:
        if self.program_length_days is None:
            return None
        return started_at + timedelta(days=self.program_length_days)

    def midpoint_opens(self, started_at: datetime) -> datetime | None:
        if self.program_length_days is None:
            return None
        offset = self.midpoint_offset_days or self.program_length_days // 2
        return started_at + timedelta(days=offset)

    def midpoint_closes(self, started_at: datetime) -> datetime | None:
        opens = self.midpoint_opens(started_at)
        return None if opens is None else opens + timedelta(days=self.midpoint_window_days)

    def final_evaluation_closes(self, started_at: datetime) -> datetime | None:
        end = self.program_end(started_at)
        return None if end is None else end + timedelta(days=self.final_evaluation_window_days)

    def meeting_slot(self, started_at: datetime, number: int) -> datetime:
        """The regular slot of meeting ``number`` (1-based), at ``meeting_time`` local time.

        Computed from the local calendar so a weekly 10:00 meeting stays at 10:00 across
        daylight-saving changes; monthly slots keep the day of month, clamped to month end.
        """
        if number < 1:
            raise ValueError("meetings are numbered from 1")
        zone = self.zone
        first_day = (started_at + timedelta(days=self.first_meeting_after_days)).astimezone(
            zone
        ).date()
        k = number - 1
        if self.cadence is Cadence.WEEKLY:
            day = first_day + timedelta(weeks=k)
        elif self.cadence is Cadence.BIWEEKLY:
            day = first_day + timedelta(weeks=2 * k)
        else:
            day = _add_months(first_day, k)
        return datetime.combine(day, self.meeting_time, tzinfo=zone).astimezone(
            started_at.tzinfo
        )

    def meeting_duration(self) -> timedelta:
        return timedelta(minutes=self.meeting_minutes)

    def log_deadline(self, scheduled_at: datetime) -> datetime:
        """After this instant an unlogged meeting counts as missed."""
        return scheduled_at + self.meeting_duration() + timedelta(
            hours=self.meeting_log_grace_hours
        )

    def reminder_at(self, scheduled_at: datetime) -> datetime:
        return scheduled_at - timedelta(hours=self.reminder_lead_hours)


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))
