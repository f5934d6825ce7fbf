"""A small error hierarchy so callers can tell "bad input" from "not allowed now".

Workflows turn these into non-retryable ``ApplicationError``s whose ``type`` is the ``code``,
so a CLI or UI can react to the kind of refusal without parsing messages.
"""

from __future__ import annotations


class DomainError(Exception):
    """A command the domain refuses. ``code`` is stable; the message is for people."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidCommand(DomainError):
    """The command itself is malformed or names things that do not exist."""

    code = "invalid_command"


class NotAParticipant(InvalidCommand):
    code = "not_a_participant"


class UnknownTopic(InvalidCommand):
    code = "unknown_topic"


class UnknownGoal(InvalidCommand):
    code = "unknown_goal"


class UnknownMeeting(InvalidCommand):
    code = "unknown_meeting"


class NotAllowedNow(DomainError):
    """The command is well formed but the pairing's current state does not allow it."""

    code = "not_allowed_now"


class PairingClosed(NotAllowedNow):
    code = "pairing_closed"


class AlreadyStarted(NotAllowedNow):
    code = "already_started"


class GoalsRequiredFirst(NotAllowedNow):
    code = "goals_required_first"


class WindowNotOpen(NotAllowedNow):
    code = "window_not_open"


class AlreadySubmitted(NotAllowedNow):
    code = "already_submitted"


# --- the cohort --------------------------------------------------------------------------------


class NotACohortMember(InvalidCommand):
    """The person named is not on the cohort's roster."""

    code = "not_a_cohort_member"


class NotAProposedPair(InvalidCommand):
    """A drop or swap names a (mentor, mentee) pair the proposal does not hold (or names it
    twice)."""

    code = "not_a_proposed_pair"


class PairBreaksHardConstraint(InvalidCommand):
    """A swap would create a pair the matcher's hard constraints rule out."""

    code = "pair_breaks_hard_constraint"


class CohortAlreadyStarted(NotAllowedNow):
    code = "cohort_already_started"


class NothingAwaitsApproval(NotAllowedNow):
    """Approval is only possible while a proposal waits for it."""

    code = "nothing_awaits_approval"


class CohortNotRunning(NotAllowedNow):
    """Launching or ending pairings needs an approved, not yet completed cohort."""

    code = "cohort_not_running"


class AlreadyLeft(NotAllowedNow):
    """The person's departure is already recorded."""

    code = "already_left"


class RosterChangeRefused(InvalidCommand):
    """An HR export changes something a sync may not decide on its own (a role change, a
    departed member who reappears); nothing of it is applied."""

    code = "roster_change_refused"


class RosterChangedSinceRead(NotAllowedNow):
    """The roster changed between reading the export and applying it: compare again."""

    code = "roster_changed_since_read"
