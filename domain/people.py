"""Participants of a program and the name-free projection that matching works on.

``Person`` carries a name and an e-mail address because coordinators need them; those must stay
out of Temporal history, so matching runs on ``MatchProfile`` (ids and matching facts only) and
workflows receive employee ids alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Ids end up in CSV cells separated by ';', in workflow ids and in file names: keep them plain.
EMPLOYEE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
EmployeeId = Annotated[str, Field(pattern=EMPLOYEE_ID_PATTERN)]
# Deliberately loose: HR systems are the source of truth for addresses; this catches columns
# pasted into the wrong place, not every RFC 5322 subtlety.
EMAIL_PATTERN = r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$"


class Role(StrEnum):
    MENTOR = "mentor"
    MENTEE = "mentee"


def normalize_tag(raw: str) -> str:
    """Skills compare case- and space-insensitively: ``' Public  Speaking'`` -> ``'public
    speaking'``."""
    return " ".join(raw.split()).lower()


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


class _Participant(BaseModel):
    """Fields shared by ``Person`` and ``MatchProfile``, with their invariants."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: EmployeeId
    role: Role
    level: int = Field(ge=0, le=99)
    department: str = Field(min_length=1, max_length=100)
    hire_date: date
    timezone: str
    # Mentees: 0. Mentors: how many mentees they take at once (>= 1).
    capacity: int = Field(default=0, ge=0, le=50)
    skills_offered: frozenset[str] = frozenset()
    skills_wanted: frozenset[str] = frozenset()
    # question id -> chosen options (spelled as in the program); a missing key = unanswered.
    answers: Mapping[str, frozenset[str]] = Field(default_factory=dict)
    do_not_pair_with: frozenset[EmployeeId] = frozenset()

    @field_validator("department")
    @classmethod
    def _department_trimmed(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("department must not be blank")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        return _known_zone(value)

    @field_validator("skills_offered", "skills_wanted")
    @classmethod
    def _skills_normalized(cls, skills: frozenset[str]) -> frozenset[str]:
        return frozenset(t for t in (normalize_tag(s) for s in skills) if t)

    @model_validator(mode="after")
    def _role_rules(self) -> _Participant:
        if self.role is Role.MENTOR and self.capacity < 1:
            raise ValueError("a mentor needs a capacity of at least 1")
        if self.role is Role.MENTEE and self.capacity != 0:
            raise ValueError("a mentee has no capacity (leave it 0)")
        if self.employee_id in self.do_not_pair_with:
            raise ValueError("do_not_pair_with must not name the person themselves")
        return self


class NotifyPreference(StrEnum):
    """How a person would rather be reached (people.csv ``notify_via``)."""

    EMAIL = "email"
    CHAT = "chat"


class Person(_Participant):
    """One row of people.csv: a participant as HR knows them."""

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    manager_id: EmployeeId | None = None
    # Contact detail, not matching input: not part of the profile (nor of the people digest).
    notify_via: NotifyPreference | None = None

    @model_validator(mode="after")
    def _not_own_manager(self) -> Person:
        if self.manager_id == self.employee_id:
            raise ValueError("a person cannot be their own manager")
        return self

    def profile(self, manager_chain: tuple[str, ...] = ()) -> MatchProfile:
        """The name-free projection; ``manager_chain`` comes from the whole directory (see
        ``to_profiles``) because one row alone only knows its direct manager."""
        if manager_chain and manager_chain[0] != self.manager_id:
            raise ValueError("manager_chain must start with the direct manager")
        if not manager_chain and self.manager_id is not None:
            manager_chain = (self.manager_id,)
        return MatchProfile(
            employee_id=self.employee_id,
            role=self.role,
            level=self.level,
            department=self.department,
            hire_date=self.hire_date,
            timezone=self.timezone,
            capacity=self.capacity,
            skills_offered=self.skills_offered,
            skills_wanted=self.skills_wanted,
            answers=self.answers,
            do_not_pair_with=self.do_not_pair_with,
            manager_chain=manager_chain,
        )


class MatchProfile(_Participant):
    """What matching may know about a participant: no name, no e-mail.

    ``manager_chain`` lists the managers above the person, direct manager first, so the
    reporting-chain rule can be checked without the rest of the organisation at hand.
    """

    manager_chain: tuple[EmployeeId, ...] = ()

    @model_validator(mode="after")
    def _chain_acyclic(self) -> MatchProfile:
        if self.employee_id in self.manager_chain or len(set(self.manager_chain)) != len(
            self.manager_chain
        ):
            raise ValueError("manager_chain must not loop")
        return self

    @property
    def manager_id(self) -> str | None:
        return self.manager_chain[0] if self.manager_chain else None


def manager_chains(managers: Mapping[str, str | None]) -> dict[str, tuple[str, ...]]:
    """Everyone's managers up to the top, direct manager first.

    A chain stops at a manager outside ``managers`` and before it would loop (intake rejects
    loops; stopping here keeps the function total for any input).
    """
    chains: dict[str, tuple[str, ...]] = {}
    for employee in managers:
        chain: list[str] = []
        seen = {employee}
        current = managers.get(employee)
        while current is not None and current not in seen:
            chain.append(current)
            seen.add(current)
            current = managers.get(current)
        chains[employee] = tuple(chain)
    return chains


def to_profiles(people: Iterable[Person]) -> list[MatchProfile]:
    """Profiles for ``people``, with reporting chains resolved within that same list."""
    people = list(people)
    chains = manager_chains({p.employee_id: p.manager_id for p in people})
    return [p.profile(chains[p.employee_id]) for p in people]
