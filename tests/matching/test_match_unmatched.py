"""Why someone stays unmatched, and the rematch helper."""

from __future__ import annotations

from datetime import timedelta

from domain.matching import match, rematch
from domain.people import Role
from tests.matching.matchkit import START, TODAY, mentee, mentor, program


def reasons(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {u.employee_id: u.reason for u in result.unmatched}


def test_no_eligible_mentor_counts_each_rejection_once():
    prog = program(max_level_gap=1, max_timezone_gap_hours=1)
    people = [
        mentor("M1", level=5),  # level gap
        mentor("M2", level=6, tz="Asia/Jayapura"),  # level gap (first rule that fails)
        mentor("M3", tz="Asia/Jayapura"),  # time zone
        mentor("M4"),  # reporting chain
        mentor("M5", avoid=["E"]),  # do-not-pair
        mentee("E", chain=["M4"]),
    ]
    result = match(prog, people, today=TODAY)
    lonely = next(u for u in result.unmatched if u.employee_id == "E")
    assert lonely.role is Role.MENTEE
    assert lonely.eligible == 0
    assert lonely.excluded_by == {
        "level_gap": 2,
        "reporting_chain": 1,
        "timezone": 1,
        "do_not_pair": 1,
    }
    assert lonely.reason == (
        "no eligible mentor among 5: 2 by level gap, 1 by reporting chain, "
        "1 by time-zone gap, 1 by do-not-pair request"
    )


def test_all_eligible_mentors_at_capacity():
    prog = program()
    result = match(
        prog, [mentor("M1"), mentor("M2"), *(mentee(f"E{k}") for k in range(3))], today=TODAY
    )
    assert reasons(result)["E2"] == "all 2 eligible mentors are at capacity (M1, M2)"


def test_mentors_with_places_left_are_listed_with_a_reason():
    prog = program(max_level_gap=1)
    people = [mentor("M1", capacity=3), mentor("SENIOR", level=6), mentee("E1"), mentee("E2")]
    result = match(prog, people, today=TODAY)
    why = reasons(result)
    assert why["M1"] == "2 of 3 places used: all 2 eligible mentees are matched"
    assert why["SENIOR"] == "0 of 1 places used: no eligible mentee among 2: 2 by level gap"
    spare = next(u for u in result.unmatched if u.employee_id == "M1")
    assert spare.role is Role.MENTOR and spare.unused_capacity == 1


def test_empty_sides():
    assert reasons(match(program(), [mentee("E")], today=TODAY)) == {
        "E": "no mentors in the cohort"
    }
    assert reasons(match(program(), [mentor("M")], today=TODAY)) == {
        "M": "0 of 1 places used: no mentees in the cohort"
    }
    empty = match(program(), [], today=TODAY)
    assert empty.pairs == () and empty.unmatched == () and empty.total_score == 0


def test_json_document_shape():
    result = match(program(), [mentor("M"), mentee("E"), mentee("F", level=9)], today=TODAY)
    doc = result.to_json()
    assert list(doc)[:4] == ["pairs", "unmatched", "total_score", "candidates"]
    assert doc["pairs"][0]["mentor"] == "M" and "questionnaire" in doc["pairs"][0]["explanation"]
    assert doc["unmatched"] == [
        {"employee_id": "F", "reason": "no eligible mentor among 1: 1 by level gap"}
    ]
    assert doc["candidates"] == [{"mentor": "M", "mentee": "E", "score": doc["pairs"][0]["score"]}]
    assert result.summary().pairs == result.pairs


# --- rematch ------------------------------------------------------------------------------


def test_rematch_picks_the_best_eligible_partner_by_score_then_id():
    prog = program()
    waiting = mentee("E", answers={"style": ["a"]})
    pool = [
        mentor("M3", answers={"style": ["a"]}),
        mentor("M2", answers={"style": ["a"]}),
        mentor("M1", answers={"style": ["b"]}),
    ]
    found = rematch(prog, waiting, pool, today=TODAY)
    assert found.partner == "M2"
    assert found.eligible == 3
    assert found.explanation is not None and found.explanation.per_question["style"] == 1.0


def test_rematch_never_returns_an_earlier_partner_or_a_full_mentor():
    prog = program()
    waiting = mentee("E", answers={"style": ["a"]})
    pool = [mentor("M1", answers={"style": ["a"]}), mentor("M2"), mentor("M3", capacity=2)]
    found = rematch(
        prog,
        waiting,
        pool,
        today=TODAY,
        exclusions=frozenset([("M1", "E")]),
        remaining_capacity={"M2": 0, "M3": 1},
    )
    assert found.partner == "M3"


def test_rematch_explains_when_nobody_fits():
    prog = program(max_level_gap=1)
    found = rematch(
        prog,
        mentee("E"),
        [mentor("M1", level=6), mentor("M2")],
        today=TODAY,
        exclusions=frozenset([("E", "M2")]),
    )
    assert found.partner is None
    assert found.reason == "no eligible mentor among 2: 1 by level gap, 1 by earlier pairing"
    assert rematch(prog, mentee("E"), [], today=TODAY).reason == "no mentors available"


def test_rematch_for_a_waiting_mentor():
    prog = program()
    found = rematch(
        prog,
        mentor("M", capacity=2),
        [mentee("E2"), mentee("E1")],
        today=TODAY,
        remaining_capacity={"M": 1},
    )
    assert found.partner == "E1"
    full = rematch(prog, mentor("M"), [mentee("E1")], today=TODAY, remaining_capacity={"M": 0})
    assert full.partner is None and full.reason == "no capacity left"


def test_rematch_window_and_cool_off():
    prog = program()  # 182 days, rematch until 50% -> day 91
    deadline = prog.rematch_deadline()
    assert deadline == START + timedelta(days=91)
    late = rematch(prog, mentee("E"), [mentor("M")], today=deadline + timedelta(days=1))
    assert late.partner is None and late.reason is not None and "closed" in late.reason
    assert rematch(prog, mentee("E"), [mentor("M")], today=deadline).partner == "M"
    exited = START + timedelta(days=20)
    cooling = rematch(
        prog, mentee("E"), [mentor("M")], today=exited + timedelta(days=6), exited_on=exited
    )
    assert cooling.reason == f"cooling off until {(exited + timedelta(days=7)).isoformat()}"
    ready = rematch(
        prog, mentee("E"), [mentor("M")], today=exited + timedelta(days=7), exited_on=exited
    )
    assert ready.partner == "M"
