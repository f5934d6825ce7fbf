"""Hostile and broken inputs, generated (hypothesis): the program.yaml and people.csv readers
and `sebaya cohort validate` never raise; every problem names the file and a line (and, where
one cell or key is at fault, its column or key path); oversized files and cells are refused
with the limit named."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from intake import Problem, check_people, check_program, people_csv, program_yaml
from sebaya.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROGRAM_TEXT = (EXAMPLES / "program.yaml").read_text(encoding="utf-8")
PEOPLE_TEXT = (EXAMPLES / "people.csv").read_text(encoding="utf-8")
PROGRAM = program_yaml.load_program(EXAMPLES / "program.yaml")
HEADER = next(csv.reader(io.StringIO(PEOPLE_TEXT)))

FUZZ = settings(
    max_examples=60,
    deadline=None,  # a loaded machine; what matters is that nothing raises
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Characters that break parsers: quotes, separators, line ends of every kind, NUL and other
# controls, a byte-order mark, YAML indicators, non-BMP and right-to-left text.
NASTY = st.sampled_from([
    '"', "'", ",", ";", "\n", "\r", "\r\n", "\x00", "\x01", "\x1b", "\ufeff", "\t", ":", "-",
    "&", "*", "!", "|", ">", "#", "%", "@", "`", "{", "}", "[", "]", "?", "\u202e", "😀", " ",
])  # fmt: skip
TEXT = st.lists(st.one_of(st.characters(), NASTY), max_size=120).map("".join)


ORIGINALS = {"program": PROGRAM_TEXT, "people": PEOPLE_TEXT}


@st.composite
def mutated(draw: st.DrawFn, original: str) -> str:
    """The original (named) with a few edits: characters inserted, deleted or replaced, lines
    cut or repeated."""
    text = ORIGINALS[original]
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "dup_line"]))
        if edit == "insert":
            text = text[:at] + draw(TEXT) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        elif edit == "replace":
            text = text[:at] + draw(NASTY) + text[at + 1:]
        elif edit == "truncate":
            text = text[:at]
        else:
            lines = text.splitlines(keepends=True) or [""]
            k = draw(st.integers(0, len(lines) - 1))
            text = "".join([*lines[: k + 1], lines[k], *lines[k + 1:]])
    return text


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT | st.dates().map(str),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def program_documents(draw: st.DrawFn) -> str:
    """Valid YAML with the program's top-level keys and arbitrary values under them."""
    spec = yaml.safe_load(PROGRAM_TEXT)
    for key in draw(st.lists(st.sampled_from(sorted(spec)), max_size=4)):
        spec[key] = draw(yaml_values)
    return yaml.safe_dump(spec, allow_unicode=draw(st.booleans()))


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    return path


def _assert_located(problems: list[Problem], path: Path, columns: set[str] | None) -> None:
    assert problems, "no result and no problem"
    for problem in problems:
        assert problem.file == str(path)
        assert isinstance(problem.line, int) and problem.line >= 1, problem
        assert problem.message.strip(), problem
        if columns is not None and problem.column is not None:
            assert problem.column in columns or problem.column.startswith("field "), problem


def _csv_columns(text: str) -> set[str]:
    """Every name a problem may use as column: the normalized header cells and the
    required columns (reported missing)."""
    try:
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next((r for r in rows if any(c.strip() for c in r)), [])
    except csv.Error:
        header = []
    names = {people_csv.normalize_header(h) for h in header}
    answers = {f"q_{q.id}" for q in PROGRAM.questionnaire.questions}
    return names | set(people_csv.REQUIRED_COLUMNS) | answers


# --- program.yaml ------------------------------------------------------------------------------


@FUZZ
@given(text=st.one_of(TEXT, mutated("program"), program_documents()))
@example(text="a: &x [1]\nb: *x\n")
@example(text="[" * 100 + "]" * 100)
@example(text="name: \x01\n")
@example(text="? [a, b]\n: c\n")
@example(text="1: 2\n")
def test_program_reader_never_raises_and_locates_every_problem(tmp_path_factory, text):
    path = _write(tmp_path_factory.mktemp("p"), "program.yaml", text)
    spec, problems = check_program(path)
    if spec is None:
        _assert_located(problems, path, None)
    else:
        assert problems == []


@FUZZ
@given(size=st.integers(1, 4096))
def test_an_oversized_program_is_refused_with_the_limit(tmp_path_factory, size):
    text = PROGRAM_TEXT + "#" * (program_yaml.MAX_FILE_BYTES - len(PROGRAM_TEXT.encode()) + size)
    path = _write(tmp_path_factory.mktemp("p"), "program.yaml", text)
    spec, problems = check_program(path)
    assert spec is None
    assert [p.line for p in problems] == [1]
    assert f"{program_yaml.MAX_FILE_BYTES:,} bytes" in problems[0].message


# --- people.csv --------------------------------------------------------------------------------


@st.composite
def rosters(draw: st.DrawFn) -> str:
    """The example roster with arbitrary cells, rows of the wrong width and shuffled columns."""
    rows = list(csv.reader(io.StringIO(PEOPLE_TEXT)))[: draw(st.integers(1, 12))]
    for _ in range(draw(st.integers(0, 8))):
        r = draw(st.integers(0, len(rows) - 1))
        if draw(st.booleans()) and rows[r]:
            c = draw(st.integers(0, len(rows[r]) - 1))
            rows[r][c] = draw(TEXT)
        else:
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r])))]
    out = io.StringIO()
    csv.writer(out, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))).writerows(
        rows)
    return out.getvalue()


@FUZZ
@given(text=st.one_of(TEXT, mutated("people"), rosters()),
       with_program=st.booleans())
@example(text='employee_id,name\n"unterminated', with_program=True)
@example(text="a,b\n\x00,\x00\n", with_program=False)
@example(text="\ufeff" + PEOPLE_TEXT.replace("\n", "\r", 3), with_program=True)
def test_people_reader_never_raises_and_locates_every_problem(
    tmp_path_factory, text, with_program
):
    path = _write(tmp_path_factory.mktemp("c"), "people.csv", text)
    people, problems = check_people(path, PROGRAM if with_program else None)
    if problems:
        assert people == []
        _assert_located(problems, path, _csv_columns(text))
    else:
        assert people


@FUZZ
@given(
    line=st.integers(2, PEOPLE_TEXT.count("\n")),
    column=st.sampled_from(HEADER),
    length=st.one_of(st.integers(people_csv.MAX_FIELD_CHARS + 1, 5000),
                     st.integers(131_000, 300_000)),
    filler=st.sampled_from(["x", "a,b", 'q"q', "line\nbreak", "é"]),
)
def test_an_oversized_cell_is_refused_with_its_line_column_and_the_limit(
    tmp_path_factory, line, column, length, filler
):
    rows = list(csv.reader(io.StringIO(PEOPLE_TEXT)))
    rows[line - 1][HEADER.index(column)] = (filler * length)[:length]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path = _write(tmp_path_factory.mktemp("c"), "people.csv", out.getvalue())
    before = io.StringIO()
    csv.writer(before).writerows(rows[: line - 1])
    first_line_of_row = before.getvalue().count("\n") + 1  # as an editor numbers it
    people, problems = check_people(path, PROGRAM)
    assert people == []
    limit = f"limit of {people_csv.MAX_FIELD_CHARS:,} characters"
    ours = [p for p in problems if limit in p.message]
    assert [(p.line, p.column) for p in ours] == [(first_line_of_row, column)]


@FUZZ
@given(extra=st.integers(1, 4096))
def test_an_oversized_people_file_is_refused_with_the_limit(tmp_path_factory, extra):
    path = tmp_path_factory.mktemp("c") / "people.csv"
    with path.open("wb") as out:
        out.write(PEOPLE_TEXT.encode())
        out.write(b"," * (people_csv.MAX_FILE_BYTES - len(PEOPLE_TEXT.encode()) + extra))
    people, problems = check_people(path, PROGRAM)
    assert people == [] and [p.line for p in problems] == [1]
    assert f"{people_csv.MAX_FILE_BYTES:,} bytes" in problems[0].message


# --- the CLI entry point -----------------------------------------------------------------------


@settings(FUZZ, max_examples=40)
@given(program=st.one_of(mutated("program"), program_documents()),
       people=st.one_of(mutated("people"), rosters()))
def test_cohort_validate_never_shows_a_traceback(tmp_path_factory, program, people):
    tmp = tmp_path_factory.mktemp("cli")
    program_path = _write(tmp, "program.yaml", program)
    people_path = _write(tmp, "people.csv", people)
    result = CliRunner().invoke(app, ["cohort", "validate", str(program_path), str(people_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        assert result.output.rstrip().splitlines()[-1].endswith("found.") or (
            "were not checked against the questionnaire" in result.output)
        located = [ln for ln in result.output.splitlines()
                   if ln.startswith((f"{program_path}:", f"{people_path}:"))]
        assert located, result.output

