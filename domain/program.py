"""What a peer-mentoring program is: its objective and the baseline it is judged against, its
ground rules, the questionnaire people answer, and the policy that turns answers into pairs.

Pure data with validation; no I/O. ``intake.load_program`` reads it from YAML.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.people import EMAIL_PATTERN
from domain.rules import GroundRules

# Question ids become CSV column names (``q_<id>``), so keep them to one safe spelling.
QUESTION_ID_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class SpecError(ValueError):
    """A rule that spans several fields, broken at ``path`` (relative to the model raising it).

    Pydantic keeps the original exception in the error context, so ``intake`` can point at the
    offending YAML key instead of at the whole model.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class ObjectiveKind(StrEnum):
    NEW_HIRE_RETENTION = "new_hire_retention"
    JUNIOR_PERFORMANCE = "junior_performance"
    LEADERSHIP_DEVELOPMENT = "leadership_development"
    KNOWLEDGE_TRANSFER = "knowledge_transfer"


class Objective(BaseModel):
    """Why the program exists and the one figure it is judged by (compared with ``baseline``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ObjectiveKind
    description: str = Field(min_length=1)
    metric: str = Field(min_length=1)


class Baseline(BaseModel):
    """Figures measured without the program, so its effect can be judged afterwards.

    Retention figures are shares of people still employed (0..1): the article's 22% leaving
    within 45 days and 40% within a year give 0.78 and 0.60.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    retention_45d: float | None = Field(default=None, ge=0, le=1)
    retention_1y: float | None = Field(default=None, ge=0, le=1)
    other: dict[str, float] = Field(default_factory=dict)
    source: str | None = None

    def figures(self) -> dict[str, float]:
        named = {"retention_45d": self.retention_45d, "retention_1y": self.retention_1y}
        out = {k: v for k, v in named.items() if v is not None}
        out.update(self.other)
        return out


class QuestionKind(StrEnum):
    SINGLE = "single"
    MULTI = "multi"


class Question(BaseModel):
    """One multiple-choice question. ``single`` scores 1 for the same answer, ``multi`` the
    Jaccard overlap of the two answer sets; ``weight`` is its share of the questionnaire score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=QUESTION_ID_PATTERN)
    text: str = Field(min_length=1)
    kind: QuestionKind
    options: tuple[str, ...] = Field(min_length=2, max_length=64)
    weight: float = Field(default=1.0, ge=0, le=100)
    required: bool = False

    @field_validator("options")
    @classmethod
    def _options_unique(cls, options: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(" ".join(o.split()) for o in options)
        if any(not o for o in cleaned):
            raise ValueError("options must not be blank")
        if any(";" in o for o in cleaned):
            raise ValueError("options must not contain ';' (it separates multi-select answers)")
        folded = [o.casefold() for o in cleaned]
        if len(set(folded)) != len(folded):
            raise ValueError("options must be unique (ignoring case)")
        return cleaned

    def canonical_option(self, raw: str) -> str | None:
        """The option spelled as in the program for a case/space-insensitive answer, or None."""
        wanted = " ".join(raw.split()).casefold()
        for option in self.options:
            if option.casefold() == wanted:
                return option
        return None


class Questionnaire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    questions: tuple[Question, ...] = ()

    @field_validator("questions")
    @classmethod
    def _ids_unique(cls, questions: tuple[Question, ...]) -> tuple[Question, ...]:
        seen: set[str] = set()
        for i, q in enumerate(questions):
            if q.id in seen:
                raise SpecError((i, "id"), f"duplicate question id {q.id!r}")
            seen.add(q.id)
        return questions

    def get(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


class MatchingWeights(BaseModel):
    """Weights of the four score components; each component is in [0, 1]. Capped at 10 so
    scores stay exact in the solver (see docs/matching.md, "Scale")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    questionnaire: float = Field(default=0.4, ge=0, le=10)
    skills: float = Field(default=0.3, ge=0, le=10)
    cross_functional: float = Field(default=0.1, ge=0, le=10)
    recent_hire: float = Field(default=0.2, ge=0, le=10)

    @model_validator(mode="after")
    def _some_weight(self) -> MatchingWeights:
        if self.questionnaire + self.skills + self.cross_functional + self.recent_hire <= 0:
            raise ValueError("at least one matching weight must be positive")
        return self

    @property
    def total(self) -> float:
        return self.questionnaire + self.skills + self.cross_functional + self.recent_hire


class MatchObjective(StrEnum):
    # Highest summed score, even if that leaves someone unmatched who could have been paired.
    MAX_TOTAL_SCORE = "max_total_score"
    # As many pairs as possible first, then the highest summed score among those.
    MAX_MATCHED = "max_matched"


class MatchingPolicy(BaseModel):
    """Hard constraints (a pair breaking one is never proposed) and the scoring weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: MatchingWeights = MatchingWeights()
    # mentor.level - mentee.level must lie in [min_level_gap, max_level_gap]: peers, not bosses.
    min_level_gap: int = Field(default=0, ge=0, le=20)
    max_level_gap: int = Field(default=1, ge=0, le=20)
    # At equal level the mentor must have joined at least this much earlier.
    min_tenure_gap_days: int = Field(default=180, ge=0, le=36500)
    forbid_same_manager: bool = False
    forbid_reporting_chain: bool = True
    # Largest difference in UTC offset during the program; None means no limit.
    max_timezone_gap_hours: float | None = Field(default=None, ge=0, le=26)
    require_cross_functional: bool = False
    # Used for a mentor whose capacity cell is blank; None makes a blank capacity an error.
    default_mentor_capacity: int | None = Field(default=None, ge=1, le=20)
    objective: MatchObjective = MatchObjective.MAX_MATCHED
    # Recent-hire priority: full within this many days of the program start, half within a year.
    recent_hire_days: int = Field(default=45, ge=0, le=3650)
    first_year_days: int = Field(default=365, ge=0, le=3650)

    @model_validator(mode="after")
    def _gaps_ordered(self) -> MatchingPolicy:
        if self.max_level_gap < self.min_level_gap:
            raise SpecError(("max_level_gap",), "max_level_gap must be >= min_level_gap")
        if self.first_year_days < self.recent_hire_days:
            raise SpecError(("first_year_days",), "first_year_days must be >= recent_hire_days")
        return self


class Approval(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class RematchPolicy(BaseModel):
    """A pair that does not work out may part without fuss (the article's "exit without
    discomfort"); each may be matched again until ``allowed_until_share`` of the program has
    passed, after ``cool_off_days``, never with the same partner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_until_share: float = Field(default=0.5, ge=0, le=1)
    cool_off_days: int = Field(default=7, ge=0, le=365)


class Language(StrEnum):
    """The language everything a participant reads is written in."""

    ID = "id"
    EN = "en"


class NotifyVia(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    # Written to the service log only: for pilots and dry runs.
    LOG = "log"


class NotificationPolicy(BaseModel):
    """How this program's notifications travel; unset fields keep the deployment's choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The channel for everyone who has no preference of their own (people.csv ``notify_via``).
    channel: NotifyVia | None = None
    # False: ignore personal preferences, everyone gets ``channel``.
    personal_preference: bool = True
    # Where escalations, exit reports and the digest go; without it they are only logged.
    coordinator_email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)


class ProgramSpec(BaseModel):
    """A whole program as configured by its coordinator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    objective: Objective
    baseline: Baseline = Baseline()
    start_date: date
    ground_rules: GroundRules
    questionnaire: Questionnaire = Questionnaire()
    matching: MatchingPolicy = MatchingPolicy()
    approval: Approval = Approval.MANUAL
    rematch: RematchPolicy = RematchPolicy()
    language: Language = Language.ID
    notifications: NotificationPolicy = NotificationPolicy()

    @field_validator("name")
    @classmethod
    def _name_trimmed(cls, name: str) -> str:
        name = " ".join(name.split())
        if not name:
            raise ValueError("name must not be blank")
        return name

    @model_validator(mode="after")
    def _metric_has_baseline(self) -> ProgramSpec:
        # Without a baseline the program cannot be judged, which is the point of step 4
        # ("evaluate") in the article.
        figures = self.baseline.figures()
        if self.objective.metric not in figures:
            known = ", ".join(sorted(figures)) or "none"
            raise SpecError(
                ("objective", "metric"),
                f"metric {self.objective.metric!r} has no baseline figure (baseline has: {known})",
            )
        return self

    def end_date(self) -> date | None:
        length = self.ground_rules.program_length_days
        return None if length is None else self.start_date + timedelta(days=length)

    def rematch_deadline(self) -> date | None:
        """Last day on which a rematch may be proposed; None for an open-ended program."""
        length = self.ground_rules.program_length_days
        if length is None:
            return None
        return self.start_date + timedelta(days=int(length * self.rematch.allowed_until_share))


ANSWER_COLUMN_PREFIX = "q_"


def answer_column(question_id: str) -> str:
    """The people.csv column holding answers to ``question_id``."""
    return f"{ANSWER_COLUMN_PREFIX}{question_id}"


def question_id_from_column(column: str) -> str | None:
    """``q_<id>`` -> ``<id>``; None when the column is not an answer column."""
    if not column.startswith(ANSWER_COLUMN_PREFIX):
        return None
    return column[len(ANSWER_COLUMN_PREFIX) :] or None
