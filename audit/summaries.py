"""One line per domain event, for people reading a timeline.

Only ids, numbers, dates and the participants' own words appear; exit reasons are shown
because the audit trail is for operations and auditors, never for the other participant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from domain import cohort_events as ce
from domain import events as e


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _sides(sides: Any) -> str:
    return " and ".join(str(getattr(s, "value", s)) for s in sides) or "nobody"


def _pairing(ev: Any) -> str:
    if isinstance(ev, e.PairingMatched):
        rematch = f", rematch of {ev.rematch_of}" if ev.rematch_of else ""
        return (f"matched mentor {ev.mentor_id} with mentee {ev.mentee_id} "
                f"(score {ev.match_score:.3f}{rematch}), starts {_at(ev.started_at)}")
    if isinstance(ev, e.GoalsSet):
        titles = "; ".join(g.goal_id for g in ev.goals)
        return f"{ev.side.value} set {len(ev.goals)} goal(s) [{titles}] (revision {ev.revision})"
    if isinstance(ev, e.MeetingScheduled):
        return f"meeting {ev.meeting_no} scheduled for {_at(ev.scheduled_at)}"
    if isinstance(ev, e.MeetingRescheduled):
        who = getattr(ev.requested_by, "value", ev.requested_by)
        return (f"meeting {ev.meeting_no} moved from {_at(ev.previous_at)} to "
                f"{_at(ev.scheduled_at)} at the request of {who}")
    if isinstance(ev, e.MeetingHeld):
        progress = ", ".join(f"{k} {v}%" for k, v in ev.goal_progress.items())
        return (f"meeting {ev.meeting_no} held {_at(ev.held_at)}, {ev.minutes} min on "
                f"{', '.join(ev.topics)}" + (f"; progress {progress}" if progress else "")
                + f" (logged by {ev.logged_by.value})")
    if isinstance(ev, e.MeetingMissed):
        who = getattr(ev.reported_by, "value", ev.reported_by)
        return (f"meeting {ev.meeting_no} of {_at(ev.scheduled_at)} missed (reported by "
                f"{who}; {ev.consecutive_missed} in a row)")
    if isinstance(ev, e.ReminderSent):
        return (f"{ev.kind.value.replace('_', ' ')} reminder #{ev.sequence} to "
                f"{_sides(ev.recipients)} ({ev.reference}, due {_at(ev.due_at)})")
    if isinstance(ev, e.PairingNudged):
        return f"pair nudged after {ev.consecutive_missed} missed meeting(s)"
    if isinstance(ev, e.PairingEscalated):
        return (f"escalated to the {ev.escalated_to.replace('_', ' ')} after "
                f"{ev.consecutive_missed} missed meeting(s)")
    if isinstance(ev, e.MidpointReviewOpened):
        return f"mid-point review opened (closes {_at(ev.closes_at)})"
    if isinstance(ev, e.MidpointReviewSubmitted):
        return (f"{ev.side.value} mid-point review: satisfaction {ev.satisfaction}/5, "
                f"{'wants' if ev.wants_to_continue else 'does not want'} to continue")
    if isinstance(ev, e.MidpointReviewClosed):
        return ("mid-point review closed" + (f", missing {_sides(ev.missing)}"
                                             if ev.missing else ", both sides reviewed"))
    if isinstance(ev, e.ExitOffered):
        return f"no-fault exit offered to {_sides(ev.offered_to)} ({ev.because})"
    if isinstance(ev, e.PairingExited):
        leaving = f", {ev.leaving_employee_id} left" if ev.leaving_employee_id else ""
        return (f"exited by {ev.initiated_by.value} during {ev.phase_at_exit}: "
                f"{ev.reason.value}{leaving}")
    if isinstance(ev, e.FinalEvaluationOpened):
        return f"final evaluation opened (closes {_at(ev.closes_at)})"
    if isinstance(ev, e.FinalEvaluationSubmitted):
        return (f"{ev.side.value} final evaluation: relationship {ev.relationship_rating}/5, "
                f"program {ev.program_rating}/5, "
                f"{'would' if ev.would_recommend else 'would not'} recommend; learned: "
                f"{ev.learned!r}")
    if isinstance(ev, e.PairingCompleted):
        return (f"completed {_at(ev.completed_at)}: {ev.meetings_held} meeting(s) held, "
                f"{ev.meetings_missed} missed, evaluations from "
                f"{_sides(ev.evaluations_received)}")
    return type(ev).__name__


def _cohort(ev: Any) -> str:
    if isinstance(ev, ce.CohortStarted):
        return (f"cohort of {ev.program_name!r} started: {ev.mentors} mentors, {ev.mentees} "
                f"mentees, starts {_at(ev.starts_at)}, approval {ev.approval}")
    if isinstance(ev, ce.MatchRunRecorded):
        return (f"match run {ev.run_id} ({ev.kind}, {ev.algorithm_version}): "
                f"{ev.pair_count} pair(s), {ev.unmatched_count} unmatched, total score "
                f"{ev.total_score:.3f}, input {ev.input_digest[:19]}…")
    if isinstance(ev, ce.MatchRunContinued):
        return f"match run {ev.run_id} chunk {ev.chunk}: {len(ev.pairs)} more pair(s)"
    if isinstance(ev, ce.ProposalAdjusted):
        return f"proposal adjusted ({ev.action}) by {ev.adjusted_by}"
    if isinstance(ev, ce.ProposalApproved):
        return f"match run {ev.run_id} approved by {ev.approved_by} ({ev.pairs} pair(s))"
    if isinstance(ev, ce.PairingLaunched):
        rematch = f", rematch of {ev.rematch_of}" if ev.rematch_of else ""
        return f"pairing {ev.pairing_id} launched (score {ev.score:.3f}{rematch})"
    if isinstance(ev, ce.PairingEnded):
        how = ev.outcome + (f": {ev.reason} by {ev.initiated_by}" if ev.reason else "")
        return f"pairing {ev.pairing_id} ended ({how})"
    if isinstance(ev, ce.ParticipantWaiting):
        return (f"{ev.role} {ev.employee_id} waits for a rematch from "
                f"{_at(ev.available_at)} (after {ev.after_pairing})")
    if isinstance(ev, ce.RematchNotPossible):
        return f"no rematch for {ev.employee_id}: {ev.reason}"
    if isinstance(ev, ce.ParticipantLeft):
        return f"{ev.employee_id} left the company on {ev.left_on.isoformat()}"
    if isinstance(ev, ce.CohortCompleted):
        return (f"cohort completed: {ev.pairings} pairing(s), {ev.completed} completed, "
                f"{ev.exited} exited")
    return type(ev).__name__


_BY_MODULE: dict[str, Callable[[Any], str]] = {
    e.__name__: _pairing,
    ce.__name__: _cohort,
}


def summarize(event: BaseModel) -> str:
    """A short human description of a decoded domain event."""
    describe = _BY_MODULE.get(type(event).__module__)
    return describe(event) if describe is not None else type(event).__name__
