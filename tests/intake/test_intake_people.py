"""people.csv: HR exports load in any column order, with or without BOM; every problem is
reported at once with file, line and column."""

from __future__ import annotations

import csv
import io
import random
from datetime import date
from pathlib import Path

import pytest

from domain.people import Role, to_profiles
from intake import IntakeError, Problem, check_people, load_people, load_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROGRAM = load_program(EXAMPLES / "program.yaml")

HEADER = [
    "employee_id", "name", "email", "role", "level", "department", "manager_id", "hire_date",
    "timezone", "capacity", "skills_offered", "skills_wanted", "q_communication_style",
    "q_interests", "q_learning_goals", "q_meeting_mode", "q_work_style", "do_not_pair_with",
]  # fmt: skip


def row(**cells: str) -> dict[str, str]:
    base = {
        "employee_id": "E1", "name": "Budi Santoso", "email": "budi@example.co.id",
        "role": "mentee", "level": "2", "department": "Sales", "manager_id": "",
        "hire_date": "2026-12-01", "timezone": "Asia/Jakarta", "capacity": "",
        "skills_offered": "", "skills_wanted": "excel;Public Speaking",
        "q_communication_style": "langsung", "q_interests": "musik;kuliner",
        "q_learning_goals": "karier", "q_meeting_mode": "daring", "q_work_style": "mandiri",
        "do_not_pair_with": "",
    }  # fmt: skip
    base.update(cells)
    return base


def boss(**cells: str) -> dict[str, str]:
    mentor = {
        "employee_id": "M1", "name": "Siti Rahman", "email": "siti@example.co.id",
        "role": "mentor", "level": "4", "capacity": "2",
    }  # fmt: skip
    return row(**{**mentor, **cells})


def write(tmp_path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "people.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def problems(path: Path, program=PROGRAM) -> list[Problem]:  # type: ignore[no-untyped-def]
    with pytest.raises(IntakeError) as caught:
        load_people(path, program)
    return list(caught.value.problems)


def test_example_people_load():
    people = load_people(EXAMPLES / "people.csv", PROGRAM)
    assert len(people) == 60
    assert sum(p.role is Role.MENTOR for p in people) == 25
    assert sum(p.role is Role.MENTEE for p in people) == 35
    assert any(p.capacity == 2 for p in people)
    assert {p.timezone for p in people} == {"Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"}
    assert {p.department for p in people} == {
        "Engineering", "Sales", "Finance", "HR", "Operations", "Marketing",
    }  # fmt: skip
    assert {p.level for p in people} == set(range(1, 7))
    assert all(p.email.endswith("@example.co.id") for p in people)
    recent = [
        p for p in people if p.role is Role.MENTEE and (PROGRAM.start_date - p.hire_date).days <= 45
    ]
    assert len(recent) >= 3
    profiles = to_profiles(people)
    assert any(len(p.manager_chain) >= 2 for p in profiles)
    assert not hasattr(profiles[0], "email") and not hasattr(profiles[0], "name")


def test_any_column_order_and_bom_give_the_same_people(tmp_path: Path):
    original = load_people(EXAMPLES / "people.csv", PROGRAM)
    with (EXAMPLES / "people.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    random.Random(3).shuffle(header)
    path = write(tmp_path, rows, header)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_people(path, PROGRAM) == original


def test_headers_are_normalised_and_extra_columns_ignored(tmp_path: Path):
    header = [h.replace("_", " ").title() if not h.startswith("q_") else h for h in HEADER]
    rows = [{new: r[old] for new, old in zip(header, HEADER, strict=True)} for r in [row()]]
    path = write(tmp_path, [dict(r, Location="Jakarta") for r in rows], [*header, "Location"])
    (person,) = load_people(path, PROGRAM)
    assert person.employee_id == "E1"
    assert person.skills_wanted == frozenset({"excel", "public speaking"})
    assert person.answers["interests"] == frozenset({"musik", "kuliner"})


def test_answers_are_matched_case_insensitively(tmp_path: Path):
    (person,) = load_people(write(tmp_path, [row(q_meeting_mode=" Tatap  Muka ")]), PROGRAM)
    assert person.answers["meeting_mode"] == frozenset({"tatap muka"})


def test_blank_mentor_capacity_takes_the_program_default(tmp_path: Path):
    program = PROGRAM.model_copy(
        update={"matching": PROGRAM.matching.model_copy(update={"default_mentor_capacity": 2})}
    )
    people = load_people(write(tmp_path, [boss(capacity="")]), program)
    assert people[0].capacity == 2
    (found,) = problems(write(tmp_path, [boss(capacity="")]))
    assert (found.line, found.column) == (2, "capacity")
    assert found.message.startswith("mentor without capacity")


@pytest.mark.parametrize(
    ("cells", "column", "message"),
    [
        ({"role": "Mentr"}, "role", "role must be 'mentor' or 'mentee', got 'Mentr'"),
        ({"level": "tiga"}, "level", "level must be a whole number, got 'tiga'"),
        ({"hire_date": "01/12/2026"}, "hire_date", "bad date '01/12/2026': expected YYYY-MM-DD"),
        ({"hire_date": "2026-02-30"}, "hire_date", "bad date '2026-02-30'"),
        ({"timezone": "Asia/Jakart"}, "timezone", "did you mean 'Asia/Jakarta'?"),
        ({"timezone": "WIT"}, "timezone", "WIT is 'Asia/Jayapura'"),
        ({"timezone": ""}, "timezone", "missing time zone"),
        ({"capacity": "1"}, "capacity", "a mentee has no capacity: leave it blank (got 1)"),
        ({"manager_id": "E0999"}, "manager_id", "unknown manager 'E0999'"),
        ({"manager_id": "E1"}, "manager_id", "'E1' is their own manager"),
        ({"do_not_pair_with": "M1;X9"}, "do_not_pair_with", "unknown employee 'X9'"),
        ({"do_not_pair_with": "E1"}, "do_not_pair_with", "cannot exclude themselves"),
        ({"q_interests": "musik;catur"}, "q_interests", "unknown option 'catur'"),
        ({"q_work_style": "mandiri;fleksibel"}, "q_work_style", "takes one answer, got 2"),
        ({"q_learning_goals": ""}, "q_learning_goals", "missing answer to required question"),
        ({"email": "budi-at-example"}, "email", "invalid e-mail address 'budi-at-example'"),
        ({"email": "SITI@example.co.id"}, "email", "duplicate e-mail address"),
        ({"employee_id": "E 1"}, "employee_id", "invalid employee id 'E 1'"),
        ({"department": " "}, "department", "missing department"),
        ({"name": ""}, "name", "missing name"),
    ],
)
def test_each_bad_cell_is_located(tmp_path: Path, cells, column, message):  # type: ignore[no-untyped-def]
    path = write(tmp_path, [boss(), row(**cells)])
    found = problems(path)
    assert any(
        p.file == str(path) and p.line == 3 and p.column == column and message in p.message
        for p in found
    ), found
    assert f"{path}:3:{column}: " in "\n".join(str(p) for p in found)


def test_mentor_without_capacity(tmp_path: Path):
    found = problems(write(tmp_path, [boss(capacity="0")]))
    assert [(p.line, p.column) for p in found] == [(2, "capacity")]
    assert "at least 1, got 0" in found[0].message


def test_duplicate_ids_and_manager_cycles(tmp_path: Path):
    rows = [
        boss(manager_id="M2"),
        boss(employee_id="M2", email="m2@example.co.id", manager_id="M3"),
        boss(employee_id="M3", email="m3@example.co.id", manager_id="M1"),
        row(),
        row(email="other@example.co.id"),
    ]
    found = problems(write(tmp_path, rows))
    assert {(p.line, p.column) for p in found} == {(2, "manager_id"), (6, "employee_id")}
    cycle = next(p for p in found if p.column == "manager_id")
    assert cycle.message == "cycle in the manager chain: M1 -> M2 -> M3 -> M1"
    dupe = next(p for p in found if p.column == "employee_id")
    assert dupe.message == "duplicate employee_id 'E1' (first on line 5)"


def test_header_problems(tmp_path: Path):
    header = [h for h in HEADER if h not in ("timezone", "q_work_style")] + ["q_hobbies"]
    found = problems(write(tmp_path, [row()], header))
    assert {(p.line, p.column, p.message) for p in found} >= {
        (1, "timezone", "missing required column 'timezone'"),
        (1, "q_work_style", "missing answer column for question 'work_style'"),
    }
    unknown = next(p for p in found if p.column == "q_hobbies")
    assert unknown.line == 1 and unknown.message.startswith("unknown question column")


def test_all_problems_of_the_broken_example_at_once():
    path = EXAMPLES / "broken" / "people.csv"
    found = problems(path)
    located = {(p.line, p.column) for p in found}
    assert located == {
        (1, "q_hobbies"),
        (3, "capacity"),
        (4, "capacity"),
        (4, "manager_id"),
        (5, "hire_date"),
        (5, "timezone"),
        (6, "employee_id"),
        (6, "q_communication_style"),
        (7, "role"),
        (7, "hire_date"),
        (7, "q_meeting_mode"),
        (7, "do_not_pair_with"),
        (8, "capacity"),
        (9, "manager_id"),
        (10, "q_learning_goals"),
    }
    assert all(p.file == str(path) for p in found)
    assert [p.line for p in found] == sorted(p.line for p in found)  # type: ignore[type-var]


def test_line_numbers_survive_multi_line_cells(tmp_path: Path):
    path = write(tmp_path, [boss(name="Siti\nRahman"), row(role="guru")])
    (found,) = problems(path)
    assert (found.line, found.column) == (4, "role")


def test_wrong_number_of_fields(tmp_path: Path):
    path = write(tmp_path, [boss(), row()])
    path.write_text(path.read_text(encoding="utf-8") + "E9,Too,few\n", encoding="utf-8")
    (found,) = problems(path)
    assert found.line == 4 and found.column is None and "found 3" in found.message


def test_semicolon_separated_and_non_utf8_and_empty(tmp_path: Path):
    path = tmp_path / "semi.csv"
    path.write_text("employee_id;name;email\nE1;Budi;b@example.co.id\n", encoding="utf-8")
    assert "';'-separated" in problems(path)[0].message
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"employee_id,name\nE1,Jos\xe9\n")
    (bad,) = problems(latin)
    assert bad.line == 2 and "UTF-8" in bad.message
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert "empty" in problems(empty)[0].message
    header_only = write(tmp_path, [])
    assert problems(header_only)[0].message == "no people in the file"


def test_without_a_program_answers_are_not_checked(tmp_path: Path):
    people, found = check_people(write(tmp_path, [row(q_interests="catur")]), None)
    assert found == [] and people[0].answers == {}
    assert people[0].hire_date == date(2026, 12, 1)
