"""Generate a realistic, seeded people.csv for a program (the sample and benchmark inputs).

    python examples/generate_people.py                          # the sample: examples/people.csv
    python examples/generate_people.py --mentees 5000 --mentors 2500 --capacity 2 --out big.csv
    # The week-3 HR export of the demo: the sample plus new hires (and a new volunteer mentor)
    python examples/generate_people.py --base examples/people.csv --new-hires 4 \
        --new-mentors 1 --hired-by 2027-01-29 --out examples/people-week3.csv

The organisation is made per department (Engineering, Sales, Finance, HR, Operations,
Marketing): a head with no manager, managers and leads below, juniors at the bottom, so
reporting chains look like an HR export. Mentees are mostly juniors and recent hires; mentors
are more senior. Answers are drawn from the program's questionnaire with plausible biases.
The same seed always gives the same file.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from domain.people import Person, Role  # noqa: E402
from domain.program import ProgramSpec, QuestionKind, answer_column  # noqa: E402
from intake.people_csv import REQUIRED_COLUMNS  # noqa: E402

DEPARTMENTS = {  # share of the workforce
    "Engineering": 0.28,
    "Sales": 0.2,
    "Operations": 0.18,
    "Marketing": 0.12,
    "Finance": 0.11,
    "HR": 0.11,
}
DEPARTMENT_SKILLS = {
    "Engineering": ["python", "sql", "cloud", "code review", "system design", "testing"],
    "Sales": ["negosiasi", "presentasi", "crm", "prospecting", "account management"],
    "Operations": ["logistik", "manajemen proyek", "excel", "perbaikan proses", "k3"],
    "Marketing": ["pemasaran digital", "copywriting", "analisis data", "desain", "riset pasar"],
    "Finance": ["akuntansi", "excel", "analisis keuangan", "perpajakan", "anggaran"],
    "HR": ["rekrutmen", "hubungan industrial", "pelatihan", "penggajian", "komunikasi"],
}
COMMON_SKILLS = ["public speaking", "manajemen waktu", "kepemimpinan", "microsoft office"]
ZONES = {"Asia/Jakarta": 0.6, "Asia/Makassar": 0.27, "Asia/Jayapura": 0.13}
FIRST_NAMES = [
    "Adi",
    "Agus",
    "Ahmad",
    "Andi",
    "Anisa",
    "Arief",
    "Ayu",
    "Bagus",
    "Bambang",
    "Budi",
    "Citra",
    "Dani",
    "Dewi",
    "Dian",
    "Dimas",
    "Eka",
    "Endang",
    "Fajar",
    "Fitri",
    "Gita",
    "Hadi",
    "Hendra",
    "Indah",
    "Intan",
    "Irfan",
    "Joko",
    "Kartika",
    "Kurniawan",
    "Lestari",
    "Lukman",
    "Maya",
    "Mega",
    "Nanda",
    "Nur",
    "Putri",
    "Rahmat",
    "Rani",
    "Reza",
    "Rina",
    "Rizky",
    "Sari",
    "Siti",
    "Sri",
    "Taufik",
    "Teguh",
    "Tri",
    "Wahyu",
    "Wulan",
    "Yogi",
    "Yuni",
]
LAST_NAMES = [
    "Hidayat",
    "Saputra",
    "Wijaya",
    "Pratama",
    "Santoso",
    "Siregar",
    "Nasution",
    "Lubis",
    "Harahap",
    "Simanjuntak",
    "Susanto",
    "Kusuma",
    "Setiawan",
    "Gunawan",
    "Hakim",
    "Rahman",
    "Putra",
    "Utami",
    "Permata",
    "Sembiring",
    "Pangaribuan",
    "Tanjung",
    "Wibowo",
    "Purnomo",
    "Halim",
    "Manurung",
    "Sitompul",
    "Ramadhan",
    "Firmansyah",
    "Anggraini",
]
MENTEE_LEVELS = {1: 0.42, 2: 0.36, 3: 0.22}
MENTOR_LEVELS = {2: 0.12, 3: 0.34, 4: 0.32, 5: 0.16, 6: 0.06}


T = TypeVar("T")


@dataclass
class _Spec:
    role: Role
    level: int
    department: str
    hire_date: date
    timezone: str
    employee_id: str = ""
    manager_id: str | None = None


def _pick(rng: random.Random, weights: Mapping[T, float]) -> T:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _spread(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by ``shares`` (largest remainder, so it adds up exactly)."""
    raw = {k: total * v / sum(shares.values()) for k, v in shares.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: total - sum(out.values())]:
        out[k] += 1
    return out


def _answers(
    rng: random.Random, program: ProgramSpec, role: Role, recent: bool
) -> dict[str, frozenset[str]]:
    answers: dict[str, frozenset[str]] = {}
    for q in program.questionnaire.questions:
        options = list(q.options)
        if q.kind is QuestionKind.SINGLE:
            # A mild bias towards the first options, as real surveys show.
            weights = [1.0 / (1 + 0.35 * k) for k in range(len(options))]
            if not q.required and rng.random() < 0.04:
                continue
            answers[q.id] = frozenset([rng.choices(options, weights=weights)[0]])
            continue
        low, high = (2, 4) if role is Role.MENTOR else (1, 3)
        chosen = set(rng.sample(options, rng.randint(low, min(high, len(options)))))
        if recent and "adaptasi budaya kerja" in options and rng.random() < 0.7:
            chosen.add("adaptasi budaya kerja")
        if not q.required and rng.random() < 0.05:
            continue
        answers[q.id] = frozenset(chosen)
    return answers


def generate_people(
    program: ProgramSpec,
    *,
    mentors: int,
    mentees: int,
    seed: int = 2027,
    capacity: int | None = None,
    do_not_pair_share: float = 0.02,
) -> list[Person]:
    """``mentors`` + ``mentees`` people in departments with reporting chains, sorted by id.

    ``capacity`` fixes every mentor's capacity; by default it is 1 to 3 (mostly 1 or 2).
    """
    rng = random.Random(seed)
    start = program.start_date
    specs: list[_Spec] = []
    for role, count, levels in (
        (Role.MENTOR, mentors, MENTOR_LEVELS),
        (Role.MENTEE, mentees, MENTEE_LEVELS),
    ):
        for dept, n in _spread(count, DEPARTMENTS).items():
            for _ in range(n):
                level = _pick(rng, levels)
                if role is Role.MENTEE:
                    roll = rng.random()
                    # Onboarding programs exist for the first year: ~30% within 45 days.
                    if roll < 0.3:
                        days = rng.randint(0, 44)
                    elif roll < 0.78:
                        days = rng.randint(46, 365)
                    else:
                        days = rng.randint(366, 3 * 365)
                else:
                    days = rng.randint(365 + 200 * level, 365 * (2 + 2 * level))
                zone = _pick(rng, ZONES)
                specs.append(_Spec(role, level, dept, start - timedelta(days=days), zone))
    rng.shuffle(specs)
    width = max(4, len(str(len(specs))))
    for k, spec in enumerate(specs, start=1):
        spec.employee_id = f"E{k:0{width}d}"

    # Reporting lines inside each department: the most senior person heads it; everyone else
    # reports to someone at a higher level, leads (level >= 4) first, spreading the load.
    for dept in DEPARTMENTS:
        staff = sorted(
            (s for s in specs if s.department == dept),
            key=lambda s: (-s.level, s.hire_date, s.employee_id),
        )
        reports: dict[str, int] = {}
        for person in staff[1:]:
            above = [s for s in staff if s.level > person.level]
            leads = [s for s in above if s.level >= 4] or above
            if not leads:  # nobody more senior: report to the head
                person.manager_id = staff[0].employee_id
                continue
            nearest = min(s.level for s in leads)
            pool = [s for s in leads if s.level <= nearest + 1]
            boss = min(pool, key=lambda s: (reports.get(s.employee_id, 0), rng.random()))
            reports[boss.employee_id] = reports.get(boss.employee_id, 0) + 1
            person.manager_id = boss.employee_id

    used_emails: set[str] = set()
    ids = [s.employee_id for s in specs]
    people: list[Person] = []
    for spec in specs:
        role, dept, hire_date = spec.role, spec.department, spec.hire_date
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower()
        email, n = f"{local}@example.co.id", 2
        while email in used_emails:
            email, n = f"{local}{n}@example.co.id", n + 1
        used_emails.add(email)
        own = DEPARTMENT_SKILLS[dept]
        other = DEPARTMENT_SKILLS[rng.choice([d for d in DEPARTMENTS if d != dept])]
        recent = (start - hire_date).days <= 45
        if role is Role.MENTOR:
            offered = set(rng.sample(own, 3)) | set(rng.sample(COMMON_SKILLS, rng.randint(1, 2)))
            wanted: set[str] = set(rng.sample(COMMON_SKILLS, rng.randint(0, 1)))
            cap = capacity if capacity is not None else rng.choices([1, 2, 3], [0.45, 0.45, 0.1])[0]
        else:
            offered = set(rng.sample(own, rng.randint(0, 1)))
            wanted = (
                set(rng.sample(own, rng.randint(1, 2)))
                | set(rng.sample(COMMON_SKILLS, rng.randint(0, 2)))
                | set(rng.sample(other, rng.randint(0, 1)))
            )
            cap = 0
        avoid: frozenset[str] = frozenset()
        if rng.random() < do_not_pair_share:
            avoid = frozenset([rng.choice([i for i in ids if i != spec.employee_id])])
        people.append(
            Person(
                employee_id=spec.employee_id,
                name=f"{first} {last}",
                email=email,
                role=role,
                level=spec.level,
                department=dept,
                manager_id=spec.manager_id,
                hire_date=hire_date,
                timezone=spec.timezone,
                capacity=cap,
                skills_offered=frozenset(offered),
                skills_wanted=frozenset(wanted),
                answers=_answers(rng, program, role, recent),
                do_not_pair_with=avoid,
            )
        )
    return sorted(people, key=lambda p: p.employee_id)


def add_new_hires(
    program: ProgramSpec,
    people: Sequence[Person],
    *,
    mentees: int,
    mentors: int = 0,
    hired_by: date,
    seed: int = 2063,
) -> list[Person]:
    """``people`` plus ``mentees`` new hires (hired in the ten days up to ``hired_by``) and
    ``mentors`` long-serving volunteers who sign up mid-program: the next HR export of a
    running cohort. New people get the next free ids and a manager at level 4 or above in
    their department, so reporting chains stay as realistic as the original file's."""
    rng = random.Random(f"{seed}:new-hires:{hired_by.isoformat()}")
    width = max(4, len(max((p.employee_id for p in people), key=len)) - 1)
    next_no = max(int(p.employee_id[1:]) for p in people if p.employee_id[1:].isdigit()) + 1
    used_emails = {p.email for p in people}
    added: list[Person] = []
    for k in range(mentees + mentors):
        role = Role.MENTEE if k < mentees else Role.MENTOR
        dept = _pick(rng, DEPARTMENTS)
        level = _pick(rng, MENTEE_LEVELS if role is Role.MENTEE else MENTOR_LEVELS)
        staff = [p for p in people if p.department == dept]
        # The nearest lead above them, else the department's most senior person.
        leads = (sorted((p for p in staff if p.level >= max(4, level + 1)),
                        key=lambda p: (p.level, p.employee_id))
                 or sorted(staff, key=lambda p: (-p.level, p.employee_id)))
        hired = (hired_by - timedelta(days=rng.randint(0, 9)) if role is Role.MENTEE
                 else hired_by - timedelta(days=rng.randint(365 + 200 * level,
                                                             365 * (2 + 2 * level))))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower()
        email, n = f"{local}@example.co.id", 2
        while email in used_emails:
            email, n = f"{local}{n}@example.co.id", n + 1
        used_emails.add(email)
        own = DEPARTMENT_SKILLS[dept]
        if role is Role.MENTOR:
            offered = set(rng.sample(own, 3)) | set(rng.sample(COMMON_SKILLS, 1))
            wanted: set[str] = set()
        else:
            offered = set()
            wanted = set(rng.sample(own, 2)) | set(rng.sample(COMMON_SKILLS, 1))
        added.append(Person(
            employee_id=f"E{next_no + k:0{width}d}", name=f"{first} {last}", email=email,
            role=role, level=level, department=dept,
            manager_id=leads[0].employee_id if leads else None, hire_date=hired,
            timezone=_pick(rng, ZONES), capacity=2 if role is Role.MENTOR else 0,
            skills_offered=frozenset(offered), skills_wanted=frozenset(wanted),
            answers=_answers(rng, program, role, recent=role is Role.MENTEE)))
    return sorted([*people, *added], key=lambda p: p.employee_id)


def write_csv(people: Sequence[Person], program: ProgramSpec, out: TextIO) -> None:
    """people.csv as docs/inputs.md describes it (comma-separated, ';' inside list cells)."""
    questions = program.questionnaire.questions
    columns = [
        *REQUIRED_COLUMNS,
        *(answer_column(q.id) for q in questions),
        "do_not_pair_with",
    ]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for p in people:
        writer.writerow(
            [
                p.employee_id,
                p.name,
                p.email,
                p.role.value,
                p.level,
                p.department,
                p.manager_id or "",
                p.hire_date.isoformat(),
                p.timezone,
                p.capacity if p.role is Role.MENTOR else "",
                ";".join(sorted(p.skills_offered)),
                ";".join(sorted(p.skills_wanted)),
                *(
                    ";".join(o for o in q.options if o in p.answers.get(q.id, frozenset()))
                    for q in questions
                ),
                ";".join(sorted(p.do_not_pair_with)),
            ]
        )


def main(argv: Sequence[str] | None = None) -> None:
    from intake import load_program

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", type=Path, default=ROOT / "examples" / "program.yaml")
    parser.add_argument("--mentors", type=int, default=25)
    parser.add_argument("--mentees", type=int, default=35)
    parser.add_argument("--seed", type=int, default=2063)
    parser.add_argument("--capacity", type=int, default=None, help="same capacity for all")
    parser.add_argument("--do-not-pair-share", type=float, default=0.06)
    parser.add_argument("--out", type=Path, default=None, help="default: standard output")
    parser.add_argument("--base", type=Path, default=None,
                        help="an existing people.csv to add new hires to (a later export)")
    parser.add_argument("--new-hires", type=int, default=4)
    parser.add_argument("--new-mentors", type=int, default=0)
    parser.add_argument("--hired-by", type=date.fromisoformat, default=None,
                        help="new hires' latest hire date (default: 2 weeks after the start)")
    args = parser.parse_args(argv)
    program = load_program(args.program)
    if args.base is not None:
        from intake import load_people

        people = add_new_hires(
            program, load_people(args.base, program), mentees=args.new_hires,
            mentors=args.new_mentors, seed=args.seed,
            hired_by=args.hired_by or program.start_date + timedelta(days=14))
    else:
        people = generate_people(
            program,
            mentors=args.mentors,
            mentees=args.mentees,
            seed=args.seed,
            capacity=args.capacity,
            do_not_pair_share=args.do_not_pair_share,
        )
    if args.out is None:
        write_csv(people, program, sys.stdout)
    else:
        with args.out.open("w", encoding="utf-8", newline="") as fh:
            write_csv(people, program, fh)


if __name__ == "__main__":
    main()
