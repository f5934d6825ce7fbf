"""The PairingWorkflow's contract: its name, input, update names and results."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain import commands as c
from domain import events as e
from domain.pairing import PairingState, Phase

PAIRING_WORKFLOW = "PairingWorkflow"

# Continue-as-new well before Temporal's own suggestion (about 10k events) so that replaying a
# pairing stays cheap even for open-ended programs with years of meetings.
DEFAULT_MAX_HISTORY_EVENTS = 4000


class PairingUpdate(StrEnum):
    """The participant and ops actions, as workflow update names."""

    SET_GOALS = "set_goals"
    LOG_MEETING = "log_meeting"
    RESCHEDULE_MEETING = "reschedule_meeting"
    SUBMIT_MIDPOINT_REVIEW = "submit_midpoint_review"
    REQUEST_EXIT = "request_exit"
    OFFER_EXIT = "offer_exit"
    SUBMIT_FINAL_EVALUATION = "submit_final_evaluation"


class PairingInput(BaseModel):
    """Ids and ground rules only: no names or e-mails ever enter Temporal history."""

    model_config = ConfigDict(frozen=True)

    start: c.StartPairing
    # When the pairing begins (the program's start date, or now for a rematch). A cohort may be
    # set up days before its program starts; the pairing then waits on a durable timer.
    start_at: datetime | None = None
    # The cohort workflow to tell when this pairing ends (exit or completion), by workflow id.
    report_to: str | None = None
    carried_state: PairingState | None = None
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    events: list[str]
    phase: Phase


class PairingOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    pairing_id: str
    cohort_id: str
    mentor_id: str
    mentee_id: str
    phase: Phase
    exit: e.PairingExited | None = None
    meetings_held: int
    meetings_missed: int
    version: int
    ended_at: datetime
