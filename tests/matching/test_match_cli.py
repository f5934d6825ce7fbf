"""`sebaya cohort match`: a dry run on the examples, as JSON and as a table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from domain.matching import ALGORITHM_VERSION
from sebaya.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ARGS = ["cohort", "match", str(EXAMPLES / "program.yaml"), str(EXAMPLES / "people.csv")]
runner = CliRunner()


def run_json() -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*ARGS, "--json", "--today", "2026-12-01"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_match_json_on_the_examples():
    doc = run_json()
    assert list(doc)[:4] == ["pairs", "unmatched", "total_score", "candidates"]
    assert doc["algorithm_version"] == ALGORITHM_VERSION
    assert len(doc["input_digest"]) == 64
    pairs = doc["pairs"]
    assert len(pairs) == 34  # 35 mentees, one explained below
    assert set(pairs[0]) == {"mentor", "mentee", "score", "explanation"}
    assert set(pairs[0]["explanation"]) >= {
        "questionnaire",
        "skills",
        "cross_functional",
        "recent_hire",
    }
    assert abs(sum(p["score"] for p in pairs) - doc["total_score"]) < 1e-6
    lonely = [u for u in doc["unmatched"] if u["employee_id"] == "E0041"]
    assert lonely == [
        {"employee_id": "E0041", "reason": "the only eligible mentor is at capacity (E0009)"}
    ]
    feasible = {(c["mentor"], c["mentee"]) for c in doc["candidates"]}
    assert {(p["mentor"], p["mentee"]) for p in pairs} <= feasible
    assert all(set(c) == {"mentor", "mentee", "score"} for c in doc["candidates"])
    # no names or e-mails in the output
    assert "@example.co.id" not in json.dumps(doc)


def test_match_json_is_deterministic():
    assert run_json() == run_json()


def test_match_table_shows_names():
    result = runner.invoke(app, [*ARGS, "--today", "2026-12-01"])
    assert result.exit_code == 0, result.output
    assert "proposed pairs" in result.stdout
    assert "Unmatched" in result.stdout
    assert "34 pairs" in result.stdout


def test_match_validates_first():
    broken = EXAMPLES / "broken" / "people.csv"
    result = runner.invoke(
        app, ["cohort", "match", str(EXAMPLES / "program.yaml"), str(broken), "--json"]
    )
    assert result.exit_code == 1
    assert f"{broken}:4:manager_id: unknown manager 'E0999'" in result.stdout


def test_bad_today():
    result = runner.invoke(app, [*ARGS, "--today", "tomorrow"])
    assert result.exit_code == 2


def test_candidates_can_be_left_out():
    result = runner.invoke(app, [*ARGS, "--json", "--no-candidates", "--today", "2026-12-01"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert "candidates" not in doc and len(doc["pairs"]) == 34
