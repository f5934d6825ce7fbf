"""The coordinator's weekly digest of pairings at risk: when it goes out and what it says.

Pure: the digest activity reads the read models (``projections.queries``) and the delivery
records, and this module turns them into the ``coordinator_digest`` notification's data, in
the program's language. Pairings are named by id only: names stay in Postgres and reach the
coordinator through the rendered message, never through Temporal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from delivery.message import COORDINATOR_DIGEST
from projections.queries import OPEN_PHASES, CohortStatus, PairingRow

# Monday 08:00 in the program's time zone: the start of the coordinator's working week.
DIGEST_WEEKDAY = 0
DIGEST_TIME = time(8, 0)
DIGEST_PERIOD = timedelta(days=7)


def next_digest_at(after: datetime, timezone: str) -> datetime:
    """The first Monday 08:00 (program-local, DST-safe) strictly after ``after``."""
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone)
    day = local.date() + timedelta(days=(DIGEST_WEEKDAY - local.weekday()) % 7)
    while True:
        at = datetime.combine(day, DIGEST_TIME, tzinfo=zone)
        if at > after:
            return at.astimezone(after.tzinfo)
        day += timedelta(days=7)


def digest_key(cohort_id: str, period_end: datetime) -> str:
    """One digest per cohort and week, whatever retries or restarts happen."""
    recipient = f"coordinator:{cohort_id}"
    return f"digest-{cohort_id}-{period_end.date().isoformat()}:{recipient}:{COORDINATOR_DIGEST}"


@dataclass(frozen=True)
class _Texts:
    months: tuple[str, ...]
    counts: tuple[str, str, str, str, str]
    escalated: str
    missed: str
    nudged: str
    goals_overdue: str
    sides: Mapping[str, str]
    failing: str


_TEXTS = {
    "id": _Texts(
        months=("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
                "September", "Oktober", "November", "Desember"),
        counts=("Pasangan berjalan", "Perlu perhatian", "Selesai", "Berakhir lebih awal",
                "Menunggu pasangan"),
        escalated="dieskalasi ke koordinator ({n}x)",
        missed="{n} pertemuan berturut-turut terlewat",
        nudged="sudah diingatkan karena pertemuan terlewat",
        goals_overdue="tujuan belum ditetapkan ({sides})",
        sides={"mentor": "mentor", "mentee": "mentee"},
        failing="pesan ke {who} gagal terkirim ({status})",
    ),
    "en": _Texts(
        months=("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December"),
        counts=("Pairings running", "Need attention", "Completed", "Ended early",
                "Waiting for a partner"),
        escalated="escalated to the coordinator ({n}x)",
        missed="{n} meeting(s) missed in a row",
        nudged="nudged about missed meetings",
        goals_overdue="goals overdue ({sides})",
        sides={"mentor": "mentor", "mentee": "mentee"},
        failing="messages to {who} are failing ({status})",
    ),
}


def _day(d: date, t: _Texts) -> str:
    return f"{d.day} {t.months[d.month - 1]} {d.year}"


def period_label(period_end: datetime, timezone: str, language: str) -> str:
    """The week a digest covers, as the coordinator reads it: '23 November 2026 - 29
    November 2026'."""
    t = _TEXTS.get(language, _TEXTS["en"])
    end = period_end.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)
    return f"{_day(end - timedelta(days=6), t)} - {_day(end, t)}"


def _reasons(row: PairingRow, failing: Mapping[str, str], t: _Texts) -> list[str]:
    reasons = []
    if row.escalated:
        reasons.append(t.escalated.format(n=row.escalations))
    if row.consecutive_missed:
        reasons.append(t.missed.format(n=row.consecutive_missed))
    if row.nudged and not row.escalated:
        reasons.append(t.nudged)
    if row.goals_overdue:
        missing = [t.sides[side] for side, done in (("mentor", row.goals_set_mentor),
                                                    ("mentee", row.goals_set_mentee))
                   if not done]
        reasons.append(t.goals_overdue.format(sides=", ".join(missing)))
    for side, employee in (("mentor", row.mentor_id), ("mentee", row.mentee_id)):
        if employee in failing:
            reasons.append(t.failing.format(who=f"{t.sides[side]} {employee}",
                                            status=failing[employee]))
    return reasons


def digest_data(
    status: CohortStatus,
    rows: Sequence[PairingRow],
    failing: Mapping[str, str],
    *,
    period_end: datetime,
    timezone: str,
    language: str,
) -> dict[str, Any]:
    """The ``coordinator_digest`` data: counts, and every open pairing that needs attention
    (at risk in ``status``, nudged, or with a participant whose messages fail), with why.

    ``failing`` maps employee ids to the status of their failing deliveries (``failed`` or
    ``dead``).
    """
    t = _TEXTS.get(language, _TEXTS["en"])
    at_risk = {risk.pairing_id for risk in status.at_risk}
    attention = []
    for row in sorted(rows, key=lambda r: r.pairing_id):
        if row.phase not in OPEN_PHASES:
            continue
        reasons = _reasons(row, failing, t)
        if row.pairing_id in at_risk or reasons:
            attention.append({"pairing_id": row.pairing_id, "text": "; ".join(reasons)})
    by_phase = status.by_phase
    running, needs, done, ended, waiting = t.counts
    return {
        "cohort_id": status.cohort_id,
        "period": period_label(period_end, timezone, language),
        "counts": {
            running: sum(by_phase.get(phase, 0) for phase in OPEN_PHASES),
            needs: len(attention),
            done: by_phase.get("completed", 0),
            ended: by_phase.get("exited", 0),
            waiting: len(status.waiting),
        },
        "attention": attention,
    }
