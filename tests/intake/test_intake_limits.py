"""Hostile or accidental giants: oversized files and fields, YAML alias bombs and deep nesting
are refused with a located problem naming the limit, before they are expanded or parsed whole."""

from __future__ import annotations

import csv
import time
from itertools import pairwise
from pathlib import Path

from typer.testing import CliRunner

from intake import check_people, check_program, people_csv, program_yaml
from sebaya.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROGRAM = EXAMPLES / "program.yaml"

# Nine lines; each alias list nests the previous one nine-fold: 9**9 scalars once expanded.
BOMB = "".join(
    [f"a: &a [{', '.join(['lol'] * 9)}]\n"]
    + [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in pairwise("abcdefghi")]
)


def _people_with(tmp_path: Path, line: int, column: str, value: str) -> Path:
    """The example roster with one cell replaced (``line`` as an editor numbers it)."""
    rows = list(csv.reader((EXAMPLES / "people.csv").open(encoding="utf-8", newline="")))
    rows[line - 1][rows[0].index(column)] = value
    path = tmp_path / "people.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)
    return path


def test_a_field_past_the_csv_modules_own_limit_is_a_located_problem(tmp_path: Path) -> None:
    path = _people_with(tmp_path, 4, "name", "x" * 200_000)  # csv's limit is 131,072
    people, problems = check_people(path, None)
    assert people == []
    assert [(p.file, p.line, p.column) for p in problems] == [(str(path), 4, "name")]
    assert f"limit of {people_csv.MAX_FIELD_CHARS:,} characters" in problems[0].message


def test_a_long_field_within_the_csv_limit_is_refused_with_its_column(tmp_path: Path) -> None:
    path = _people_with(tmp_path, 6, "email", "y" * (people_csv.MAX_FIELD_CHARS + 1))
    _, problems = check_people(path, None)
    assert [(p.line, p.column) for p in problems] == [(6, "email")]
    assert "2,000 characters" in problems[0].message


def test_a_quoted_field_with_commas_and_newlines_is_located_in_the_header_terms(
    tmp_path: Path,
) -> None:
    path = _people_with(tmp_path, 3, "skills_offered", "a,\nb;" * 50_000)
    _, problems = check_people(path, None)
    assert [(p.line, p.column) for p in problems] == [(3, "skills_offered")]


def test_an_oversized_people_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    with path.open("wb") as out:
        out.write((EXAMPLES / "people.csv").read_bytes())
        out.write(b"x" * people_csv.MAX_FILE_BYTES)
    _, problems = check_people(path, None)
    assert [(p.line, p.message) for p in problems] == [
        (1, f"the file is larger than the limit of {people_csv.MAX_FILE_BYTES:,} bytes")
    ]


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(BOMB, encoding="utf-8")
    began = time.monotonic()
    spec, problems = check_program(path)
    assert time.monotonic() - began < 1  # it used to take 34 s and 2.3 GB
    assert spec is None
    assert [(p.file, p.line) for p in problems] == [(str(path), 1)]
    assert "anchors and aliases" in problems[0].message
    assert "(column 4)" in problems[0].message


def test_a_merge_key_alias_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    text = PROGRAM.read_text(encoding="utf-8")
    path.write_text("defaults: &d {x: 1}\n" + text + "extra:\n  <<: *d\n", encoding="utf-8")
    _, problems = check_program(path)
    assert [p.line for p in problems] == [1]
    assert "anchors and aliases" in problems[0].message


def test_deep_nesting_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    _, problems = check_program(path)
    assert [p.line for p in problems] == [1]
    assert f"limit of {program_yaml.MAX_DEPTH} levels" in problems[0].message


def test_an_oversized_program_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM.read_text() + "#" * program_yaml.MAX_FILE_BYTES, encoding="utf-8")
    _, problems = check_program(path)
    assert [(p.line, p.message) for p in problems] == [
        (1, f"the file is larger than the limit of {program_yaml.MAX_FILE_BYTES:,} bytes")
    ]


def test_validate_reports_the_oversized_field_without_a_traceback(tmp_path: Path) -> None:
    path = _people_with(tmp_path, 4, "name", "x" * 200_000)
    result = CliRunner().invoke(app, ["cohort", "validate", str(PROGRAM), str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}:4:name: field longer than the limit of 2,000 characters" in result.output
