"""`sebaya cohort validate`: exit 0 with a summary when clean, non-zero with every problem."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sebaya.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def test_validate_the_examples():
    result = runner.invoke(
        app, ["cohort", "validate", str(EXAMPLES / "program.yaml"), str(EXAMPLES / "people.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "60 people: 25 mentors" in result.stdout
    assert "35 mentees" in result.stdout


def test_validate_lists_every_problem_and_fails():
    people = EXAMPLES / "broken" / "people.csv"
    result = runner.invoke(app, ["cohort", "validate", str(EXAMPLES / "program.yaml"), str(people)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"{people}:4:manager_id: unknown manager 'E0999'" in lines
    assert f"{people}:9:manager_id: cycle in the manager chain: E0008 -> E0009 -> E0008" in lines
    assert lines[-1] == "15 problems found."


def test_validate_reports_both_files_at_once():
    broken = EXAMPLES / "broken"
    result = runner.invoke(
        app, ["cohort", "validate", str(broken / "program.yaml"), str(broken / "people.csv")]
    )
    assert result.exit_code == 1
    assert f"{broken / 'program.yaml'}:25:matching.max_level_gapp: unknown key" in result.stdout
    assert f"{broken / 'people.csv'}:6:employee_id: duplicate employee_id" in result.stdout
    assert "were not checked against the questionnaire" in result.stdout


def test_validate_syntax_error_and_separator():
    broken = EXAMPLES / "broken"
    result = runner.invoke(
        app,
        [
            "cohort",
            "validate",
            str(broken / "program_syntax.yaml"),
            str(broken / "people_semicolon.csv"),
        ],
    )
    assert result.exit_code == 1
    assert f"{broken / 'program_syntax.yaml'}:5: " in result.stdout
    assert "';'-separated" in result.stdout


def test_missing_file():
    result = runner.invoke(app, ["cohort", "validate", "nope.yaml", str(EXAMPLES / "people.csv")])
    assert result.exit_code == 1
    assert "nope.yaml: cannot read the file" in result.stdout
