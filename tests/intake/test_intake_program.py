"""program.yaml: the example loads; every problem is reported with line and key path."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from domain.program import Approval, MatchObjective, ObjectiveKind, QuestionKind
from intake import IntakeError, Problem, check_program, load_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str, name: str = "program.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[Problem]:
    with pytest.raises(IntakeError) as caught:
        load_program(path)
    return list(caught.value.problems)


VALID = """\
name: Test
objective: {kind: new_hire_retention, description: keep them, metric: retention_45d}
baseline: {retention_45d: 0.78}
start_date: 2027-01-11
ground_rules:
  topics: [karier]
  meeting_time: 10:00
questionnaire:
  questions:
    - id: ready
      text: Ready?
      kind: single
      options: [yes, no, on, off]
"""


def test_example_program_loads():
    spec = load_program(EXAMPLES / "program.yaml")
    assert spec.objective.kind is ObjectiveKind.NEW_HIRE_RETENTION
    assert spec.baseline.retention_45d == 0.78 and spec.baseline.retention_1y == 0.60
    assert spec.start_date == date(2027, 1, 11)
    assert spec.ground_rules.program_length_days == 182
    assert spec.ground_rules.meeting_minutes == 60
    assert "adaptasi budaya kerja" in spec.ground_rules.topics
    assert len(spec.questionnaire.questions) == 5
    assert spec.questionnaire.get("learning_goals").kind is QuestionKind.MULTI  # type: ignore[union-attr]
    assert spec.matching.objective is MatchObjective.MAX_MATCHED
    assert spec.approval is Approval.AUTO
    assert spec.rematch.allowed_until_share == 0.6 and spec.rematch.cool_off_days == 7


def test_yaml_12_scalars(tmp_path: Path):
    """10:00 is a time (not 600 seconds) and yes/no/on/off stay option names."""
    spec = load_program(write(tmp_path, VALID))
    assert spec.ground_rules.meeting_time == time(10, 0)
    assert spec.questionnaire.questions[0].options == ("yes", "no", "on", "off")


def test_syntax_error_has_a_line(tmp_path: Path):
    found = problems(write(tmp_path, "name: x\nobjective:\n  kind: a\n   bad: [1, 2\n"))
    assert len(found) == 1
    assert found[0].line is not None and found[0].line >= 4
    assert str(found[0]).startswith(f"{tmp_path / 'program.yaml'}:")


def test_broken_example_reports_every_problem_with_line_and_key():
    found = problems(EXAMPLES / "broken" / "program.yaml")
    located = {(p.line, p.column) for p in found}
    assert (8, "baseline.retention_45d") in located
    assert (9, "start_date") in located
    assert (11, "ground_rules.cadence") in located
    assert (19, "questionnaire.questions[0].options") in located
    assert (25, "matching.max_level_gapp") in located
    assert (27, "matching.weights.skills") in located
    assert (28, "approval") in located
    typo = next(p for p in found if p.column == "matching.max_level_gapp")
    assert "did you mean 'max_level_gap'" in typo.message


def test_cross_field_rule_points_at_the_key(tmp_path: Path):
    text = VALID.replace("metric: retention_45d", "metric: retention_90d")
    (found,) = problems(write(tmp_path, text))
    assert found.line == 2
    assert found.column == "objective.metric"
    assert "retention_90d" in found.message and "retention_45d" in found.message


def test_missing_key_and_duplicate_key(tmp_path: Path):
    text = VALID.replace("start_date: 2027-01-11\n", "") + "name: again\n"
    found = problems(write(tmp_path, text))
    messages = {(p.line, p.column, p.message) for p in found}
    assert (1, "start_date", "missing required key 'start_date'") in messages
    assert any(
        p.message.startswith("duplicate key 'name' (first on line 1)") and p.line == 13
        for p in found
    )


def test_policy_rules(tmp_path: Path):
    text = VALID + "matching:\n  min_level_gap: 2\n  max_level_gap: 1\n"
    (found,) = problems(write(tmp_path, text))
    assert (found.line, found.column) == (16, "matching.max_level_gap")


def test_not_a_mapping_and_empty_and_unreadable(tmp_path: Path):
    assert "mapping" in problems(write(tmp_path, "- a\n- b\n"))[0].message
    assert "empty" in problems(write(tmp_path, "# nothing\n"))[0].message
    (missing,) = problems(tmp_path / "nope.yaml")
    assert missing.line is None and "cannot read" in missing.message


def test_bom_is_accepted(tmp_path: Path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode("utf-8"))
    assert load_program(path).name == "Test"


def test_check_program_does_not_raise(tmp_path: Path):
    spec, found = check_program(write(tmp_path, "name: [unclosed\n"))
    assert spec is None and found
