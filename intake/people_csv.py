"""people.csv (as an HR system exports it) -> list[Person], with every problem located by
line and column name."""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import ValidationError

from domain.people import (
    EMAIL_PATTERN,
    EMPLOYEE_ID_PATTERN,
    NotifyPreference,
    Person,
    Role,
    normalize_tag,
)
from domain.program import (
    ProgramSpec,
    QuestionKind,
    answer_column,
    question_id_from_column,
)
from intake._text import read_text
from intake.problems import IntakeError, Problem

REQUIRED_COLUMNS = (
    "employee_id",
    "name",
    "email",
    "role",
    "level",
    "department",
    "manager_id",
    "hire_date",
    "timezone",
    "capacity",
    "skills_offered",
    "skills_wanted",
)
OPTIONAL_COLUMNS = ("do_not_pair_with", "notify_via")
LIST_SEPARATOR = ";"

# Limits for an untrusted upload. A 10,000-person roster with a dozen questions is about
# 4 MB; the longest legitimate cell (a list of skills or exclusions) a few hundred characters.
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_FIELD_CHARS = 2000

# Indonesian HR systems often export the zone abbreviations; point at the IANA names.
_ZONE_ALIASES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalize_header(raw: str) -> str:
    """'Employee ID' / 'employee-id' / ' employee_id ' -> 'employee_id'."""
    return re.sub(r"[\s\-]+", "_", raw.strip().lower())


def split_list(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError):
        pass
    alias = _ZONE_ALIASES.get(name.upper())
    if alias:
        return f"unknown time zone '{name}' (use the IANA name: {name.upper()} is '{alias}')"
    close = difflib.get_close_matches(name, sorted(_zones()), n=1)
    hint = (
        f" (did you mean '{close[0]}'?)"
        if close
        else " (expected an IANA name such as Asia/Jakarta)"
    )
    return f"unknown time zone '{name}'{hint}"


class _Row:
    """One data row: typed cell readers that record a problem instead of raising."""

    def __init__(self, label: str, line: int, cells: dict[str, str], problems: list[Problem]):
        self.label, self.line, self.cells, self.problems = label, line, cells, problems
        self.ok = True

    def has(self, column: str) -> bool:
        return column in self.cells

    def raw(self, column: str) -> str:
        return self.cells.get(column, "").strip()

    def problem(self, column: str | None, message: str) -> None:
        self.ok = False
        self.problems.append(Problem(self.label, self.line, column, message))

    def required(self, column: str, what: str) -> str | None:
        if not self.has(column):
            self.ok = False  # the missing column is reported once, on the header
            return None
        value = " ".join(self.raw(column).split())
        if not value:
            self.problem(column, f"missing {what}")
            return None
        return value

    def employee_id(self, column: str, value: str) -> bool:
        if re.fullmatch(EMPLOYEE_ID_PATTERN, value):
            return True
        self.problem(column, f"invalid employee id '{value}' (use letters, digits, '.', '_', '-')")
        return False

    def integer(self, column: str, *, low: int, high: int) -> int | None:
        raw = self.raw(column)
        try:
            value = int(raw)
        except ValueError:
            self.problem(column, f"{column} must be a whole number, got '{raw}'")
            return None
        if not low <= value <= high:
            self.problem(column, f"{column} must be between {low} and {high}, got {value}")
            return None
        return value


def _check_header(
    header: list[str], program: ProgramSpec | None, label: str, problems: list[Problem]
) -> list[str]:
    names = [normalize_header(h) for h in header]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(Problem(label, 1, name, f"column '{name}' appears more than once"))
        seen.add(name)
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            problems.append(Problem(label, 1, name, f"missing required column '{name}'"))
    if program is not None:
        questions = {q.id for q in program.questionnaire.questions}
        known = ", ".join(sorted(questions)) or "none"
        for name in names:
            qid = question_id_from_column(name)
            if qid is not None and qid not in questions:
                close = difflib.get_close_matches(qid, sorted(questions), n=1)
                hint = (
                    f"did you mean '{answer_column(close[0])}'?" if close else f"questions: {known}"
                )
                problems.append(
                    Problem(
                        label, 1, name, f"unknown question column: no question '{qid}' ({hint})"
                    )
                )
        for q in program.questionnaire.questions:
            if answer_column(q.id) not in seen:
                problems.append(
                    Problem(
                        label,
                        1,
                        answer_column(q.id),
                        f"missing answer column for question '{q.id}'",
                    )
                )
    return names


def _answers(row: _Row, program: ProgramSpec) -> dict[str, frozenset[str]]:
    answers: dict[str, frozenset[str]] = {}
    for q in program.questionnaire.questions:
        column = answer_column(q.id)
        if not row.has(column):
            continue
        chosen: list[str] = []
        for raw in split_list(row.raw(column)):
            option = q.canonical_option(raw)
            if option is None:
                options = ", ".join(q.options)
                row.problem(
                    column, f"unknown option '{raw}' for question '{q.id}' (options: {options})"
                )
            elif option not in chosen:
                chosen.append(option)
        if q.kind is QuestionKind.SINGLE and len(chosen) > 1:
            row.problem(column, f"question '{q.id}' takes one answer, got {len(chosen)}")
        if q.required and not chosen and not split_list(row.raw(column)):
            row.problem(column, f"missing answer to required question '{q.id}'")
        if chosen:
            answers[q.id] = frozenset(chosen)
    return answers


def _capacity(row: _Row, role: Role | None, program: ProgramSpec | None) -> int | None:
    if not row.has("capacity"):
        row.ok = False
        return None
    raw = row.raw("capacity")
    value = row.integer("capacity", low=-1000, high=1000) if raw else None
    if raw and value is None:
        return None
    if role is Role.MENTOR:
        if value is None:
            default = program.matching.default_mentor_capacity if program else None
            if default is None:
                row.problem(
                    "capacity",
                    "mentor without capacity: give the number of mentees "
                    "(>= 1) or set matching.default_mentor_capacity",
                )
            return default
        if value < 1:
            row.problem(
                "capacity", f"mentor without capacity: capacity must be at least 1, got {value}"
            )
            return None
        if value > 50:
            row.problem("capacity", f"capacity must be at most 50, got {value}")
            return None
        return value
    if role is Role.MENTEE and value not in (None, 0):
        row.problem("capacity", f"a mentee has no capacity: leave it blank (got {value})")
        return None
    return 0


def _cycles(managers: dict[str, str | None]) -> list[list[str]]:
    """Every loop in the manager graph, each once, starting at its smallest id."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    loops: list[list[str]] = []
    for start in sorted(managers):
        path: list[str] = []
        node: str | None = start
        while node is not None and node in managers and state.get(node) is None:
            state[node] = 1
            path.append(node)
            node = managers[node]
        if node is not None and state.get(node) == 1:
            loop = path[path.index(node) :]
            k = loop.index(min(loop))
            loops.append(loop[k:] + loop[:k])
        for member in path:
            state[member] = 2
    return loops


def _records(
    text: str, label: str, problems: list[Problem]
) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of each CSV record. A record the csv module cannot read
    (a field past its own limit, or broken quoting) ends the file with a located problem:
    nothing after it can be trusted to start where it seems to."""
    reader = csv.reader(io.StringIO(text, newline=""))
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(_unreadable(text, label, start, str(exc)))
            return
        end = reader.line_num
        yield start, end, cells


def _unreadable(text: str, label: str, start: int, error: str) -> Problem:
    if "field larger than field limit" not in error:
        return Problem(label, start, None, f"cannot read this record: {error}")
    # Lines as the csv reader counted them (any of \n, \r\n, \r ends one).
    lines = io.StringIO(text, newline="")
    offset = sum(len(lines.readline()) for _ in range(start - 1))
    # The header names the columns; this record is past it (the csv module reads headers
    # with the same limit), so locate the field in the header's terms when possible.
    index = _long_field_index(text, offset)
    header = next(csv.reader(io.StringIO(text, newline="")), []) if start > 1 else []
    column = normalize_header(header[index]) if index < len(header) else f"field {index + 1}"
    message = f"field longer than the limit of {MAX_FIELD_CHARS:,} characters"
    return Problem(label, start, column, message)


def _long_field_index(text: str, offset: int) -> int:
    """Which field (0-based) of the record starting at ``offset`` first passes the limit."""
    index, length, quoted, i = 0, 0, False, offset
    while i < len(text) and length <= MAX_FIELD_CHARS:
        ch = text[i]
        if quoted:
            if ch == '"':
                quoted = text.startswith('"', i + 1)
                i += quoted  # a doubled quote is one character of the field
            length += 1
        elif ch == '"':
            quoted = True
        elif ch == ",":
            index, length = index + 1, 0
        elif ch in "\r\n":
            break
        else:
            length += 1
        i += 1
    return index


def _long_cells(
    label: str, line: int, names: list[str], cells: list[str], problems: list[Problem]
) -> bool:
    long = [name for name, cell in zip(names, cells, strict=True) if len(cell) > MAX_FIELD_CHARS]
    message = f"field longer than the limit of {MAX_FIELD_CHARS:,} characters"
    problems += [Problem(label, line, name, message) for name in long]
    return bool(long)


def check_people(
    path: str | Path, program: ProgramSpec | None
) -> tuple[list[Person], list[Problem]]:
    """Parse and validate people.csv against ``program`` (None: skip the questionnaire and the
    default capacity, e.g. when the program file itself is broken). Never raises for bad
    input; the people are returned only when there are no problems."""
    label = str(path)
    text, problems = read_text(path, label, max_bytes=MAX_FILE_BYTES)
    if text is None:
        return [], problems
    unreadable: list[Problem] = []
    records = _records(text, label, unreadable)
    header: list[str] | None = None
    header_line = 1
    for start, _, raw_header in records:
        if any(cell.strip() for cell in raw_header):
            header, header_line = raw_header, start
            break
    if header is None:
        if unreadable:
            return [], unreadable
        return [], [Problem(label, 1, None, "the file is empty: expected a header row")]
    if len(header) == 1 and LIST_SEPARATOR in header[0]:
        return [], [
            Problem(
                label,
                header_line,
                None,
                "the file is ';'-separated: export it comma-separated "
                "(';' separates the items of a list inside a cell)",
            )
        ]
    names = _check_header(header, program, label, problems)

    rows: list[tuple[_Row, dict[str, Any]]] = []
    first_line: dict[str, int] = {}
    emails: dict[str, int] = {}
    for line, _, cells in records:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            problems.append(
                Problem(label, line, None, f"expected {len(names)} fields, found {len(cells)}")
            )
            continue
        if _long_cells(label, line, names, cells, problems):
            continue
        row = _Row(label, line, dict(zip(names, cells, strict=True)), problems)
        values: dict[str, Any] = {}

        eid = row.required("employee_id", "employee_id")
        if eid is not None and row.employee_id("employee_id", eid):
            if eid in first_line:
                row.problem(
                    "employee_id",
                    f"duplicate employee_id '{eid}' (first on line {first_line[eid]})",
                )
            else:
                first_line[eid] = line
            values["employee_id"] = eid
        values["name"] = row.required("name", "name")
        email = row.required("email", "e-mail address")
        if email is not None:
            if not re.fullmatch(EMAIL_PATTERN, email):
                row.problem("email", f"invalid e-mail address '{email}'")
            elif email.lower() in emails:
                row.problem(
                    "email",
                    f"duplicate e-mail address '{email}' (first on line {emails[email.lower()]})",
                )
            else:
                emails[email.lower()] = line
            values["email"] = email
        role: Role | None = None
        raw_role = row.required("role", "role")
        if raw_role is not None:
            try:
                role = Role(raw_role.lower())
            except ValueError:
                row.problem("role", f"role must be 'mentor' or 'mentee', got '{raw_role}'")
        values["role"] = role
        if row.required("level", "level") is not None:
            values["level"] = row.integer("level", low=0, high=99)
        values["department"] = row.required("department", "department")
        if row.has("manager_id"):
            manager = row.raw("manager_id") or None
            if manager is not None and row.employee_id("manager_id", manager):
                if manager == eid:
                    row.problem("manager_id", f"'{eid}' is their own manager")
            values["manager_id"] = manager
        else:
            row.ok = False
        raw_date = row.required("hire_date", "hire date")
        if raw_date is not None:
            if not _ISO_DATE.match(raw_date):
                row.problem("hire_date", f"bad date '{raw_date}': expected YYYY-MM-DD")
            else:
                try:
                    values["hire_date"] = date.fromisoformat(raw_date)
                except ValueError as exc:
                    row.problem("hire_date", f"bad date '{raw_date}': {exc}")
        zone = row.required("timezone", "time zone")
        if zone is not None:
            trouble = _zone_problem(zone)
            if trouble:
                row.problem("timezone", trouble)
            values["timezone"] = zone
        values["capacity"] = _capacity(row, role, program)
        for column in ("skills_offered", "skills_wanted"):
            if row.has(column):
                values[column] = frozenset(normalize_tag(s) for s in split_list(row.raw(column)))
        values["answers"] = _answers(row, program) if program is not None else {}
        avoid: list[str] = []
        for other in split_list(row.raw("do_not_pair_with")):
            if not row.employee_id("do_not_pair_with", other):
                continue
            if other == eid:
                row.problem("do_not_pair_with", "cannot exclude themselves")
            else:
                avoid.append(other)
        values["do_not_pair_with"] = frozenset(avoid)
        if via := row.raw("notify_via").lower():
            if via in {v.value for v in NotifyPreference}:
                values["notify_via"] = NotifyPreference(via)
            else:
                row.problem("notify_via", f"notify_via must be 'email' or 'chat' (or empty), "
                                          f"got '{row.raw('notify_via')}'")
        rows.append((row, values))

    if unreadable:
        # The rest of the file is unknown, so "unknown manager" and the like would be noise.
        return [], sorted([*problems, *unreadable], key=lambda p: p.line or 0)
    if not rows and not problems:
        problems.append(Problem(label, header_line, None, "no people in the file"))

    known = set(first_line)
    managers: dict[str, str | None] = {}
    for row, values in rows:
        manager = values.get("manager_id")
        if manager is not None and manager not in known:
            row.problem("manager_id", f"unknown manager '{manager}'")
        for other in sorted(values.get("do_not_pair_with", ())):
            if other not in known:
                row.problem("do_not_pair_with", f"unknown employee '{other}'")
        eid = values.get("employee_id")
        if eid is not None and first_line.get(eid) == row.line:
            managers[eid] = manager if manager in known else None
    for loop in _cycles(managers):
        if len(loop) == 1:
            continue  # "their own manager" is already reported on the row
        first = min(first_line[e] for e in loop)
        row = next(r for r, _ in rows if r.line == first)
        shown = " -> ".join([*loop, loop[0]])
        row.problem("manager_id", f"cycle in the manager chain: {shown}")

    people: list[Person] = []
    if problems:
        # By line; within a line, in column-check order (stable sort).
        return [], sorted(problems, key=lambda p: p.line or 0)
    for row, values in rows:
        try:
            people.append(Person(**values))
        except ValidationError as exc:  # a rule the cell checks above did not anticipate
            for error in exc.errors():
                where = str(error["loc"][0]) if error["loc"] else None
                message = str(error["msg"]).removeprefix("Value error, ")
                row.problem(where, message)
    return (people if not problems else []), problems


def load_people(path: str | Path, program: ProgramSpec | None) -> list[Person]:
    """Read people.csv; raise ``IntakeError`` listing every problem."""
    people, problems = check_people(path, program)
    if problems:
        raise IntakeError(problems)
    return people
