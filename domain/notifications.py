"""Which events tell whom what. Pure: the workflow asks, the notification activity delivers.

Recipients are employee ids or ``coordinator:<cohort>``; the activity looks up contact details
so names and e-mails never enter Temporal history. An exit's reason goes to the coordinator
only; the other side is told neutrally that the pairing has ended (no fault, no blame).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from domain import events as e
from domain.events import Side
from domain.pairing import PairingState


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    recipient: str
    template: str
    data: dict[str, Any] = {}


def coordinator_of(state: PairingState) -> str:
    return f"coordinator:{state.cohort_id}"


def notifications_for(state: PairingState, event: e.DomainEvent) -> list[Notification]:
    """``state`` is the pairing *after* the event was folded in."""
    pid = state.pairing_id

    # Ids only (never names): the delivery layer looks names up to say which pairing it is.
    def to(side: Side, template: str, **data: Any) -> Notification:
        other = Side.MENTEE if side is Side.MENTOR else Side.MENTOR
        return Notification(recipient=state.employee_of(side), template=template,
                            data={"pairing_id": pid, "cohort_id": state.cohort_id,
                                  "partner_id": state.employee_of(other), **data})

    def to_coordinator(template: str, **data: Any) -> Notification:
        return Notification(recipient=coordinator_of(state), template=template,
                            data={"pairing_id": pid, "cohort_id": state.cohort_id,
                                  "mentor_id": state.mentor_id, "mentee_id": state.mentee_id,
                                  **data})

    both = (Side.MENTOR, Side.MENTEE)
    match event:
        case e.PairingMatched():
            return [to(side, "pairing_matched", role=side.value) for side in both]
        case e.ReminderSent():
            return [
                to(side, f"reminder_{event.kind.value}", due_at=event.due_at.isoformat(),
                   reference=event.reference, sequence=event.sequence)
                for side in event.recipients
            ]
        case e.MeetingRescheduled():
            return [to(side, "meeting_rescheduled", meeting_no=event.meeting_no,
                       scheduled_at=event.scheduled_at.isoformat()) for side in both]
        case e.PairingNudged():
            return [to(side, "nudge_meetings_missed", missed=event.consecutive_missed)
                    for side in both]
        case e.PairingEscalated():
            return [to_coordinator("escalation", missed=event.consecutive_missed)]
        case e.ExitOffered():
            return [to(side, "no_fault_exit_offered") for side in event.offered_to]
        case e.PairingExited():
            notes = [to_coordinator("pairing_exit_report", initiated_by=event.initiated_by.value,
                                    reason=event.reason.value, phase=event.phase_at_exit)]
            # Everyone in the pair gets the same neutral message: no reason, no initiator.
            notes += [to(side, "pairing_ended_neutral") for side in both
                      if state.employee_of(side) != event.leaving_employee_id]
            return notes
        case e.PairingCompleted():
            return [to(side, "pairing_completed") for side in both]
    return []
