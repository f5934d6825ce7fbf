"""Render a :class:`domain.evaluation.CohortReport` as JSON, CSV, HTML or plain text.

Rendering only: every figure is computed by ``domain.evaluation``; nothing here reads a
clock, a file or the network, so the same report always renders to the same bytes.

* JSON keeps the report's field order (stable by construction) at full precision.
* CSV is long/tidy (one figure per row) and safe to open in a spreadsheet: text cells that a
  spreadsheet would run as a formula are prefixed with ``'`` (see :func:`csv_cell`).
* HTML is one self-contained page (inline CSS, inline SVG charts, no scripts, no external
  resources); every chart has a title, a description and a data table beside it.
* text is a short terminal summary without colour codes.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from domain.evaluation import (
    ATTAINED_THRESHOLD,
    EXCLUSION_REASONS,
    CohortReport,
    Comparison,
    LearnedText,
    Retention,
)
from domain.statistics import Distribution, Mean, Proportion

Format = Literal["json", "csv", "html", "text"]

CSV_COLUMNS: tuple[str, ...] = (
    "section", "metric", "group", "value", "ci_low", "ci_high", "n", "baseline",
)
# Decimals kept for numbers in the CSV (JSON keeps full precision).
CSV_DECIMALS = 6
# A text cell starting with one of these is a formula (or becomes one after a spreadsheet
# trims it) in Excel, LibreOffice or Google Sheets. The full-width forms are read as their
# ASCII twins by some East-Asian locales of Excel.
FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

SIDE_LABELS = {"mentor": "Mentors", "mentee": "Mentees"}


def render(report: CohortReport, fmt: Format) -> str:
    """The report in ``fmt``: ``json``, ``csv``, ``html`` or ``text``."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        return to_html(report)
    if fmt == "text":
        return to_text(report)
    raise ValueError(f"unknown report format {fmt!r} (json, csv, html or text)")


# --------------------------------------------------------------------------- JSON


def to_json(report: CohortReport) -> str:
    """Pretty JSON in the report's field order; identical reports give identical text."""
    # allow_nan=False: a NaN would be a bug upstream and is not valid JSON anyway.
    return (
        json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False, allow_nan=False)
        + "\n"
    )


# --------------------------------------------------------------------------- CSV

Cell = str | int | float | bool | None


def csv_cell(value: Cell) -> str | int | float:
    """One CSV cell, safe against formula injection.

    Numbers stay numbers (a difference of -0.05 is written ``-0.05`` and a spreadsheet reads it
    as a number). Text — ids, labels, what people wrote — is escaped with a leading ``'`` when
    its first character, or its first character after leading spaces and line breaks, is one
    of :data:`FORMULA_TRIGGERS`. Spreadsheets show the text without running it; the quote is
    visible when the file is read as plain text.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, CSV_DECIMALS)
    if value.startswith(FORMULA_TRIGGERS) or value.lstrip(" \n").startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


@dataclass(frozen=True)
class _Row:
    section: str
    metric: str
    group: str = ""
    value: Cell = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    baseline: float | None = None

    def cells(self) -> list[str | int | float]:
        return [
            csv_cell(c)
            for c in (self.section, self.metric, self.group, self.value, self.ci_low,
                      self.ci_high, self.n, self.baseline)
        ]


def _prop_row(section: str, metric: str, group: str, p: Proportion,
              baseline: float | None = None) -> _Row:
    return _Row(section, metric, group, p.rate, p.ci_low, p.ci_high, p.n, baseline)


def _mean_row(section: str, metric: str, group: str, m: Mean) -> _Row:
    return _Row(section, metric, group, m.mean, m.ci_low, m.ci_high, m.n)


def _csv_rows(r: CohortReport) -> Iterator[_Row]:
    for metric, text in (
        ("report_version", r.report_version),
        ("cohort_id", r.cohort_id),
        ("program_name", r.program_name),
        ("objective_kind", r.objective_kind),
        ("objective_metric", r.objective_metric),
        ("as_of", r.as_of.isoformat()),
        ("baseline_source", r.baseline_source),
    ):
        yield _Row("report", metric, value=text)
    yield _Row("report", "confidence", value=r.confidence)

    c = r.counts
    for metric, count in (
        ("pairings", c.pairings), ("completed", c.completed), ("exited", c.exited),
        ("in_progress", c.in_progress), ("rematches", c.rematches), ("people", c.people),
        ("mentors", c.mentors), ("mentees", c.mentees),
    ):
        yield _Row("counts", metric, value=count)
    for phase, count in c.by_phase.items():
        yield _Row("counts", "by_phase", phase, count)

    for side, g in r.goal_attainment.items():
        yield _mean_row("goal_attainment", "mean_attainment", side, g.mean_attainment)
        yield _prop_row("goal_attainment", f"attained_share_ge_{g.threshold}", side, g.attained)
        yield _Row("goal_attainment", "evaluations", side, g.evaluations)
        yield _Row("goal_attainment", "goals_set", side, g.goals_set)
        yield _Row("goal_attainment", "goals_rated", side, g.goals_rated)

    m = r.meetings
    yield _prop_row("meetings", "adherence", "all", m.overall)
    yield _Row("meetings", "held", "all", m.held)
    yield _Row("meetings", "missed", "all", m.missed)
    d = m.per_pairing
    for stat, value in (("min", d.min), ("q1", d.q1), ("median", d.median), ("q3", d.q3),
                        ("max", d.max)):
        yield _Row("meetings", "adherence_per_pairing", stat, value, n=d.n)
    for b in m.histogram:
        yield _Row("meetings", "adherence_histogram", _bin_label(b.low, b.high), b.count)
    yield _mean_row("meetings", "held_per_pairing", "all", m.held_per_pairing)
    yield _mean_row("meetings", "missed_per_pairing", "all", m.missed_per_pairing)

    for side, s in r.satisfaction.items():
        yield _mean_row("satisfaction", "midpoint_satisfaction", side, s.midpoint)
        yield _mean_row("satisfaction", "relationship_rating", side, s.relationship)
        yield _mean_row("satisfaction", "program_rating", side, s.program)
        yield _prop_row("satisfaction", "would_recommend", side, s.would_recommend)

    for side, items in (("mentor", r.learned.mentor), ("mentee", r.learned.mentee)):
        for item in items:
            yield _Row("learned", "learned", side, item.text, n=item.count)

    e = r.exits
    yield _prop_row("exits", "exited_share", "all", e.exited)
    for metric, table in (("by_reason", e.by_reason), ("by_phase", e.by_phase),
                          ("by_initiator", e.by_initiator)):
        for key, count in table.items():
            yield _Row("exits", metric, key, count)
    yield _Row("exits", "followed_by_rematch", "all", e.followed_by_rematch)

    x = r.cross_functional
    yield _prop_row("cross_functional", "share", "known_departments", x.share)
    yield _Row("cross_functional", "unknown_department", "all", x.unknown_department)

    for key, t in r.retention.items():
        yield _Row("retention", "rate", key, t.rate, t.ci_low, t.ci_high, t.population,
                   t.baseline)
        yield _Row("retention", "retained", key, t.retained, n=t.population)
        yield _Row("retention", "not_retained", key, t.not_retained, n=t.population)
        yield _Row("retention", "difference", key, t.difference, n=t.population,
                   baseline=t.baseline)
        yield _Row("retention", "p_value", key, t.p_value, n=t.population, baseline=t.baseline)
        yield _Row("retention", "verdict", key, t.verdict, n=t.population, baseline=t.baseline)
        yield _Row("retention", "window_days", key, t.window_days)
        for reason, count in t.excluded.items():
            yield _Row("retention", f"excluded_{reason}", key, count)
        yield _Row("retention", "left_while_window_open", key, t.left_while_window_open)
        yield _Row("retention", "median_days_hire_to_program", key,
                   t.days_hire_to_program.median, n=t.days_hire_to_program.n)

    for row in r.before_after:
        yield _Row("before_after", row.metric, "program", row.value, row.ci_low, row.ci_high,
                   row.n, row.baseline)
        yield _Row("before_after", row.metric, "difference", row.difference, n=row.n,
                   baseline=row.baseline)
        yield _Row("before_after", row.metric, "p_value", row.p_value, n=row.n,
                   baseline=row.baseline)
        yield _Row("before_after", row.metric, "verdict", row.verdict, n=row.n,
                   baseline=row.baseline)
        yield _Row("before_after", row.metric, "is_objective", row.is_objective)


def to_csv(report: CohortReport, *, bom: bool = False) -> str:
    """A tidy CSV, one figure per row, columns :data:`CSV_COLUMNS`.

    ``bom=True`` starts the text with a UTF-8 byte-order mark, which Excel needs to read
    non-ASCII text (names of programs, what people wrote) correctly.
    """
    out = io.StringIO()
    # QUOTE_MINIMAL quotes cells holding commas, quotes or line breaks (a learned text may have
    # all three); CRLF is what RFC 4180 and Excel expect.
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in _csv_rows(report):
        writer.writerow(row.cells())
    return ("\ufeff" if bom else "") + out.getvalue()


# --------------------------------------------------------------------------- formatting


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "—"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def _ci(low: float | None, high: float | None, fmt: str = "pct") -> str:
    if low is None or high is None:
        return "—"
    f = _pct if fmt == "pct" else _num
    return f"{f(low)} – {f(high)}"


def _bin_label(low: float, high: float) -> str:
    return f"{round(low * 100)}-{round(high * 100)}%"


def _median_iqr(d: Distribution) -> str:
    if d.median is None:
        return "—"
    return f"{_pct(d.median)} (quartiles {_pct(d.q1)} – {_pct(d.q3)})"


def _signed_pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f} pp"


def _comparison_value(row: Comparison) -> str:
    if row.kind == "proportion":
        return _pct(row.value)
    return _num(row.value)


def _comparison_baseline(row: Comparison) -> str:
    return _pct(row.baseline) if row.kind == "proportion" else _num(row.baseline)


def _comparison_difference(row: Comparison) -> str:
    if row.difference is None:
        return "—"
    return _signed_pct(row.difference) if row.kind == "proportion" else f"{row.difference:+.2f}"


# --------------------------------------------------------------------------- text


def to_text(report: CohortReport) -> str:
    """A plain terminal summary: a few lines per section, no colour codes."""
    r = report
    c = r.counts
    o = r.objective
    lines = [
        f"{r.program_name} — cohort {r.cohort_id}, as of {r.as_of.isoformat()}",
        f"Objective ({r.objective_metric}): {_comparison_value(o)} "
        f"[{_ci(o.ci_low, o.ci_high, 'pct' if o.kind == 'proportion' else 'num')}] "
        f"vs baseline {_comparison_baseline(o)}, n={o.n}: {o.verdict}",
        "",
        f"Pairings: {c.pairings} ({c.completed} completed, {c.exited} exited, "
        f"{c.in_progress} in progress, {c.rematches} rematches); people: {c.people}",
        "",
        "Retention (mentees, from hire date):",
    ]
    for t in r.retention.values():
        lines.append(
            f"  {t.metric}: {t.retained}/{t.population} = {_pct(t.rate)} "
            f"[{_ci(t.ci_low, t.ci_high)}], baseline {_pct(t.baseline)}, "
            f"diff {_signed_pct(t.difference)}, p={_p(t.p_value)}: {t.verdict}"
        )
    lines.append("")
    lines.append("Goal attainment (final evaluations):")
    for side, g in r.goal_attainment.items():
        lines.append(
            f"  {side}: mean {_num(g.mean_attainment.mean, 1)} "
            f"[{_ci(g.mean_attainment.ci_low, g.mean_attainment.ci_high, 'num')}], "
            f">= {g.threshold}: {_pct(g.attained.rate)} "
            f"[{_ci(g.attained.ci_low, g.attained.ci_high)}] "
            f"({g.goals_rated} goals, {g.evaluations} evaluations)"
        )
    m = r.meetings
    lines += [
        "",
        f"Meetings: {m.held} held, {m.missed} missed, adherence {_pct(m.overall.rate)} "
        f"[{_ci(m.overall.ci_low, m.overall.ci_high)}]; per pairing median "
        f"{_median_iqr(m.per_pairing)} (n={m.per_pairing.n})",
        "",
        "Satisfaction (1-5):",
    ]
    for side, s in r.satisfaction.items():
        lines.append(
            f"  {side}: mid-point {_num(s.midpoint.mean)} (n={s.midpoint.n}), "
            f"relationship {_num(s.relationship.mean)}, program {_num(s.program.mean)} "
            f"(n={s.program.n}), would recommend {_pct(s.would_recommend.rate)}"
        )
    e = r.exits
    reasons = ", ".join(f"{k} {v}" for k, v in e.by_reason.items() if v) or "none"
    lines += [
        "",
        f"Exits: {e.exited.successes}/{e.exited.n} = {_pct(e.exited.rate)} ({reasons}); "
        f"{e.followed_by_rematch} followed by a rematch",
        f"Cross-functional pairs: {_pct(r.cross_functional.share.rate)} "
        f"(n={r.cross_functional.share.n}, {r.cross_functional.unknown_department} unknown)",
        "",
        "Mentors learned:",
    ]
    lines += [f"  {i.count} × {_one_line(i.text)}" for i in r.learned.mentor[:3]] or ["  —"]
    lines.append("Mentees learned:")
    lines += [f"  {i.count} × {_one_line(i.text)}" for i in r.learned.mentee[:3]] or ["  —"]
    return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    # Terminal control characters in user text could rewrite the screen; show them inert.
    flat = "".join(ch if ch.isprintable() else "?" for ch in flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --------------------------------------------------------------------------- SVG charts

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. Bars also
# carry their value as text, so colour is never the only cue.
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
VERMILION = "#D55E00"
GREY = "#8C8C8C"
INK = "#1f2328"
MUTED = "#57606a"
GRID = "#d0d7de"

_W = 640  # viewBox width of every chart; the page scales it to the column width


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class _Bar:
    series: str
    value: float | None
    low: float | None = None
    high: float | None = None
    color: str = BLUE
    label: str = ""


@dataclass(frozen=True)
class _Group:
    label: str
    bars: Sequence[_Bar]


def _svg_open(chart_id: str, title: str, desc: str, height: int) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {_W} {height}" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif">'
        f'<title id="{chart_id}-title">{_e(title)}</title>'
        f'<desc id="{chart_id}-desc">{_e(desc)}</desc>'
    )


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    out = []
    for label, color in items:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 17:.1f}" y="{y:.1f}" font-size="12" fill="{INK}">{_e(label)}</text>'
        )
        x += 28 + 7 * len(label)
    return "".join(out)


def _column_chart(
    chart_id: str,
    title: str,
    desc: str,
    groups: Sequence[_Group],
    *,
    y_max: float,
    ticks: Sequence[float],
    tick_label: str = "{:g}",
    legend: Sequence[tuple[str, str]] = (),
    height: int = 280,
    group_label_size: int = 13,
) -> str:
    """Vertical bars in groups, each bar optionally with a CI whisker and a value label."""
    left, right, top, bottom = 52, 12, 34 if legend else 14, 44
    plot_w, plot_h = _W - left - right, height - top - bottom

    def y(v: float) -> float:
        v = min(max(v, 0.0), y_max)  # whiskers past the axis are cut at its end
        return top + plot_h * (1 - v / y_max)

    parts = [_svg_open(chart_id, title, desc, height)]
    if legend:
        parts.append(_legend(legend, left, 16))
    for t in ticks:
        parts.append(
            f'<line x1="{left}" x2="{_W - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y(t) + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{MUTED}">{_e(tick_label.format(t))}</text>'
        )
    group_w = plot_w / max(len(groups), 1)
    for gi, group in enumerate(groups):
        gx = left + gi * group_w
        n = max(len(group.bars), 1)
        bar_w = min(56.0, group_w * 0.78 / n)
        start = gx + (group_w - bar_w * n) / 2
        for bi, bar in enumerate(group.bars):
            bx = start + bi * bar_w
            cx = bx + bar_w / 2
            if bar.value is None:
                parts.append(
                    f'<text x="{cx:.1f}" y="{top + plot_h - 6:.1f}" font-size="11" '
                    f'text-anchor="middle" fill="{MUTED}">n/a</text>'
                )
                continue
            yv = y(bar.value)
            parts.append(
                f'<rect x="{bx + 2:.1f}" y="{yv:.1f}" width="{bar_w - 4:.1f}" '
                f'height="{top + plot_h - yv:.1f}" fill="{bar.color}">'
                f"<title>{_e(f'{group.label}, {bar.series}: {bar.label}')}</title></rect>"
            )
            label_y = yv
            if bar.low is not None and bar.high is not None:
                y_lo, y_hi = y(bar.low), y(bar.high)
                cap = min(8.0, bar_w / 4)
                parts.append(
                    f'<g stroke="{INK}" stroke-width="1.5">'
                    f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_lo:.1f}" y2="{y_hi:.1f}"/>'
                    f'<line x1="{cx - cap:.1f}" x2="{cx + cap:.1f}" y1="{y_lo:.1f}" '
                    f'y2="{y_lo:.1f}"/>'
                    f'<line x1="{cx - cap:.1f}" x2="{cx + cap:.1f}" y1="{y_hi:.1f}" '
                    f'y2="{y_hi:.1f}"/></g>'
                )
                label_y = min(label_y, y_hi)
            if bar.label:
                parts.append(
                    f'<text x="{cx:.1f}" y="{max(label_y - 5, top - 2):.1f}" font-size="11" '
                    f'text-anchor="middle" fill="{INK}">{_e(bar.label)}</text>'
                )
        parts.append(
            f'<text x="{gx + group_w / 2:.1f}" y="{top + plot_h + 18:.1f}" '
            f'font-size="{group_label_size}" text-anchor="middle" fill="{INK}">'
            f"{_e(group.label)}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{_W - right}" y1="{top + plot_h:.1f}" y2="{top + plot_h:.1f}" '
        f'stroke="{INK}" stroke-width="1"/></svg>'
    )
    return "".join(parts)


def _bar_rows_chart(
    chart_id: str, title: str, desc: str, rows: Sequence[tuple[str, int]], color: str
) -> str:
    """Horizontal bars, one per row, labelled with the count (for long category names)."""
    row_h, top, left, right = 26, 10, 150, 40
    height = top * 2 + row_h * max(len(rows), 1)
    biggest = max((v for _, v in rows), default=0) or 1
    plot_w = _W - left - right
    parts = [_svg_open(chart_id, title, desc, height)]
    for i, (label, value) in enumerate(rows):
        yy = top + i * row_h
        w = plot_w * value / biggest
        parts.append(
            f'<text x="{left - 8}" y="{yy + row_h / 2 + 4:.1f}" font-size="12" text-anchor="end" '
            f'fill="{INK}">{_e(label)}</text>'
            f'<rect x="{left}" y="{yy + 4:.1f}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{color if value else GRID}"><title>{_e(f"{label}: {value}")}</title></rect>'
            f'<text x="{left + w + 6:.1f}" y="{yy + row_h / 2 + 4:.1f}" font-size="12" '
            f'fill="{INK}">{value}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - top}" stroke="{INK}"/></svg>'
    )
    return "".join(parts)


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
  margin: 0; background: #f6f8fa; }
main { max-width: 980px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin: 18px 0 6px; }
p.meta { color: #57606a; margin: 0 0 16px; }
.callout { border-left: 5px solid #0072B2; background: #eef6fc; padding: 12px 16px;
  margin: 16px 0; }
.callout strong.verdict { font-size: 1.1rem; }
.callout.learned { border-color: #009E73; background: #ecf8f3; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr)); gap: 10px;
  margin: 12px 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; }
.card .v { font-size: 1.5rem; font-weight: 600; display: block; }
.card .k { color: #57606a; font-size: .85rem; }
figure { margin: 12px 0 4px; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; height: auto; max-width: 760px; display: block; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: .9rem; }
caption { text-align: left; color: #57606a; font-size: .85rem; padding-bottom: 2px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
thead th { background: #f6f8fa; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 0 24px; align-items: start; }
td code { word-break: break-all; }
td .what { display: block; color: #57606a; font-size: .85rem; }
.muted { color: #57606a; font-size: .9rem; }
ul.learned { padding-left: 20px; }
ul.learned li { margin: 2px 0; white-space: pre-line; }
.count { display: inline-block; min-width: 2.2em; color: #57606a;
  font-variant-numeric: tabular-nums; }
@media (max-width: 720px) { .cols { grid-template-columns: 1fr; } }
@media print {
  body { background: #fff; font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, .callout { break-inside: avoid; page-break-inside: avoid; }
}
@page { margin: 14mm; }
"""


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]],
           numeric: Sequence[bool] | None = None) -> str:
    """A table of already-escaped cells (the caller escapes; numbers need no escaping)."""
    numeric = numeric or [False] * len(head)
    cls = [' class="num"' if n else "" for n in numeric]
    out = [f"<table><caption>{_e(caption)}</caption><thead><tr>"]
    out += [f'<th scope="col"{c}>{_e(h)}</th>' for h, c in zip(head, cls, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        out += [f"<td{c}>{cell}</td>" for cell, c in zip(row, cls, strict=True)]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>"


def _card(value: object, key: str) -> str:
    return (
        f'<div class="card"><span class="v">{_e(value)}</span>'
        f'<span class="k">{_e(key)}</span></div>'
    )


def _section_objective(r: CohortReport) -> str:
    o = r.objective
    ci_kind = "pct" if o.kind == "proportion" else "num"
    detail = (
        f"{_e(_comparison_value(o))} (95% CI {_e(_ci(o.ci_low, o.ci_high, ci_kind))}, n={o.n}) "
        f"against a baseline of {_e(_comparison_baseline(o))}; "
        f"difference {_e(_comparison_difference(o))}, p = {_e(_p(o.p_value))}."
        if o.computed and o.value is not None
        else f"No observations yet (n=0); the baseline is {_e(_comparison_baseline(o))}."
        if o.computed
        else "This metric is not one the report can compute; see docs/evaluation.md."
    )
    return (
        '<div class="callout" role="note">'
        f"<div>Objective: {_e(r.objective_description)}</div>"
        f"<div>Measure <code>{_e(o.metric)}</code> — {_e(o.label)}: "
        f'<strong class="verdict">{_e(o.verdict)}</strong></div>'
        f"<div>{detail}</div></div>"
    )


def _section_before_after(r: CohortReport) -> str:
    props = [row for row in r.before_after if row.computed and row.kind == "proportion"]
    parts = ["<h2>Before and after: the program against its baseline</h2>"]
    if props:
        groups = [
            _Group(
                row.metric,
                [
                    _Bar("baseline", row.baseline, color=GREY, label=_pct(row.baseline, 0)),
                    _Bar("program", row.value, row.ci_low, row.ci_high, BLUE,
                         _pct(row.value, 0) + f" (n={row.n})"),
                ],
            )
            for row in props
        ]
        desc = "; ".join(
            f"{row.metric}: baseline {_pct(row.baseline)}, program {_pct(row.value)} "
            f"(95% CI {_ci(row.ci_low, row.ci_high)}, n={row.n}), {row.verdict}"
            for row in props
        )
        parts.append(_figure(
            "Program vs baseline (shares, with 95% confidence intervals)",
            _column_chart(
                "chart-before-after", "Program versus baseline", desc, groups,
                y_max=1.0, ticks=[0, 0.25, 0.5, 0.75, 1.0], tick_label="{:.0%}",
                legend=[("baseline (before)", GREY), ("program (after), 95% CI", BLUE)],
                group_label_size=12 if len(groups) > 4 else 13,
            ),
        ))
    rows = [
        [
            f"<code>{_e(row.metric)}</code>"
            + (" <strong>(objective)</strong>" if row.is_objective else "")
            + (f'<span class="what">{_e(row.label)}</span>' if row.label != row.metric else ""),
            _e(_comparison_baseline(row)),
            _e(_comparison_value(row)),
            _e(_ci(row.ci_low, row.ci_high, "pct" if row.kind == "proportion" else "num")),
            str(row.n),
            _e(_comparison_difference(row)),
            _e(_p(row.p_value)),
            _e(row.verdict),
        ]
        for row in r.before_after
    ]
    parts.append(_table(
        "Every baseline figure next to the program's figure (table for the chart above)",
        ["metric", "baseline", "program", "95% CI", "n", "difference", "p", "verdict"],
        rows, [False, True, True, True, True, True, True, False],
    ))
    if r.baseline_source:
        parts.append(f'<p class="muted">Baseline source: {_e(r.baseline_source)}</p>')
    return "".join(parts)


def _section_counts(r: CohortReport) -> str:
    c = r.counts
    cards = "".join([
        _card(c.pairings, "pairings"), _card(c.completed, "completed"),
        _card(c.exited, "exited"), _card(c.in_progress, "in progress"),
        _card(c.rematches, "rematches"), _card(c.people, "people"),
    ])
    phases = _table("Pairings by phase", ["phase", "pairings"],
                    [[_e(k), str(v)] for k, v in c.by_phase.items()], [False, True])
    return f'<h2>The cohort</h2><div class="cards">{cards}</div>{phases}'


def _section_retention(r: CohortReport) -> str:
    parts = ["<h2>Retention of mentees</h2>",
             '<p class="muted">Share of mentees still employed 45 days and one year after '
             "their hire date, counting only mentees whose outcome is known on the report date "
             "and whose window was still open when they joined the program. Mentees whose "
             "pairing ended early are kept in (intention to treat).</p>"]
    head = ["", *(t.metric for t in r.retention.values())]
    ts: list[Retention] = list(r.retention.values())

    def line(label: str, cells: Sequence[str]) -> list[str]:
        return [_e(label), *cells]

    rows = [
        line("population (n)", [str(t.population) for t in ts]),
        line("retained", [str(t.retained) for t in ts]),
        line("not retained", [str(t.not_retained) for t in ts]),
        line("rate", [_e(_pct(t.rate)) for t in ts]),
        line("95% CI (Wilson)", [_e(_ci(t.ci_low, t.ci_high)) for t in ts]),
        line("baseline", [_e(_pct(t.baseline)) for t in ts]),
        line("difference", [_e(_signed_pct(t.difference)) for t in ts]),
        line("p (exact binomial)", [_e(_p(t.p_value)) for t in ts]),
        line("verdict", [_e(t.verdict) for t in ts]),
        line("median days hire → program",
             [_e(_num(t.days_hire_to_program.median, 0)) for t in ts]),
    ]
    rows += [
        line(f"excluded: {reason.replace('_', ' ')}", [str(t.excluded.get(reason, 0)) for t in ts])
        for reason in EXCLUSION_REASONS
    ]
    rows.append(line("of which already left", [str(t.left_while_window_open) for t in ts]))
    parts.append(_table("Retention figures and who was left out", head, rows,
                        [False, *([True] * len(ts))]))
    return "".join(parts)


def _section_goals(r: CohortReport) -> str:
    groups = []
    for side, g in r.goal_attainment.items():
        m, a = g.mean_attainment, g.attained
        groups.append(_Group(
            f"{SIDE_LABELS.get(side, side)} ({g.goals_rated} goals)",
            [
                _Bar("mean attainment", m.mean, m.ci_low, m.ci_high, BLUE, _num(m.mean, 0)),
                _Bar(f"goals >= {g.threshold}", None if a.rate is None else a.rate * 100,
                     None if a.ci_low is None else a.ci_low * 100,
                     None if a.ci_high is None else a.ci_high * 100, ORANGE, _pct(a.rate, 0)),
            ],
        ))
    desc = "; ".join(
        f"{side}: mean attainment {_num(g.mean_attainment.mean, 1)} of 100 "
        f"(n={g.mean_attainment.n}), {_pct(g.attained.rate)} of goals at or above "
        f"{g.threshold}"
        for side, g in r.goal_attainment.items()
    )
    chart = _figure(
        "Goal attainment per side (0–100, with 95% confidence intervals)",
        _column_chart(
            "chart-goals", "Goal attainment per side", desc, groups, y_max=100,
            ticks=[0, 25, 50, 75, 100],
            legend=[("mean attainment (0–100)", BLUE),
                    (f"% of goals ≥ {ATTAINED_THRESHOLD}", ORANGE)],
        ),
    )
    rows = [
        [
            _e(SIDE_LABELS.get(side, side)), str(g.evaluations), str(g.goals_set),
            str(g.goals_rated), _e(_num(g.mean_attainment.mean, 1)),
            _e(_ci(g.mean_attainment.ci_low, g.mean_attainment.ci_high, "num")),
            f"{g.attained.successes}", _e(_pct(g.attained.rate)),
            _e(_ci(g.attained.ci_low, g.attained.ci_high)),
        ]
        for side, g in r.goal_attainment.items()
    ]
    table = _table(
        "Goal attainment (table for the chart above)",
        ["side", "evaluations", "goals set", "goals rated", "mean", "95% CI (t)",
         f"goals ≥ {ATTAINED_THRESHOLD}", "share", "95% CI (Wilson)"],
        rows, [False, *([True] * 8)],
    )
    return (
        "<h2>Goals: both sides set them, both sides are measured</h2>" + chart + table
    )


def _section_meetings(r: CohortReport) -> str:
    m = r.meetings
    groups = [
        _Group(_bin_label(b.low, b.high), [_Bar("pairings", float(b.count), color=GREEN,
                                                 label=str(b.count))])
        for b in m.histogram
    ]
    top = max((b.count for b in m.histogram), default=0)
    y_max = float(max(top, 1))
    step = max(1, -(-top // 4))
    ticks = [float(t) for t in range(0, int(y_max) + step, step)]
    y_max = max(y_max, ticks[-1])
    desc = (
        f"Meetings held out of meetings due, per pairing (n={m.per_pairing.n}): median "
        f"{_pct(m.per_pairing.median)}, quartiles {_pct(m.per_pairing.q1)} and "
        f"{_pct(m.per_pairing.q3)}. "
        + ", ".join(f"{_bin_label(b.low, b.high)}: {b.count}" for b in m.histogram)
    )
    chart = _figure(
        "How many pairings held what share of their meetings",
        _column_chart("chart-meetings", "Meeting adherence per pairing", desc, groups,
                      y_max=y_max, ticks=ticks, group_label_size=11, height=250),
    )
    summary = _table(
        "Meeting adherence",
        ["measure", "value", "95% CI", "n"],
        [
            ["held / (held + missed), all meetings", _e(_pct(m.overall.rate)),
             _e(_ci(m.overall.ci_low, m.overall.ci_high)), str(m.overall.n)],
            ["per pairing: median",
             _e(_median_iqr(m.per_pairing)), "—", str(m.per_pairing.n)],
            ["meetings held per pairing (mean)", _e(_num(m.held_per_pairing.mean, 1)),
             _e(_ci(m.held_per_pairing.ci_low, m.held_per_pairing.ci_high, "num")),
             str(m.held_per_pairing.n)],
            ["meetings missed per pairing (mean)", _e(_num(m.missed_per_pairing.mean, 1)),
             _e(_ci(m.missed_per_pairing.ci_low, m.missed_per_pairing.ci_high, "num")),
             str(m.missed_per_pairing.n)],
        ],
        [False, True, True, True],
    )
    # Transposed (bands as columns) so the ten bands take two lines, not ten.
    hist = _table(
        "Pairings per adherence band (table for the chart above)",
        ["adherence", *(_bin_label(b.low, b.high) for b in m.histogram)],
        [["pairings", *(str(b.count) for b in m.histogram)]],
        [False, *([True] * len(m.histogram))],
    )
    return f"<h2>Meetings</h2>{chart}{hist}{summary}"


def _section_satisfaction(r: CohortReport) -> str:
    series = (("mid-point satisfaction", BLUE), ("final: relationship", ORANGE),
              ("final: program", GREEN))
    groups = []
    rows = []
    for side, s in r.satisfaction.items():
        bars = []
        for (name, color), mean in zip(series, (s.midpoint, s.relationship, s.program),
                                       strict=True):
            bars.append(_Bar(name, mean.mean, mean.ci_low, mean.ci_high, color,
                             _num(mean.mean, 1)))
            rows.append([_e(SIDE_LABELS.get(side, side)), _e(name), _e(_num(mean.mean)),
                         _e(_ci(mean.ci_low, mean.ci_high, "num")), str(mean.n)])
        w = s.would_recommend
        rows.append([_e(SIDE_LABELS.get(side, side)), "would recommend", _e(_pct(w.rate)),
                     _e(_ci(w.ci_low, w.ci_high)), str(w.n)])
        groups.append(_Group(SIDE_LABELS.get(side, side), bars))
    desc = "; ".join(
        f"{side}: mid-point {_num(s.midpoint.mean)} (n={s.midpoint.n}), relationship "
        f"{_num(s.relationship.mean)}, program {_num(s.program.mean)} (n={s.program.n})"
        for side, s in r.satisfaction.items()
    )
    chart = _figure(
        "Satisfaction per side, mid-point vs final (1–5, with 95% confidence intervals)",
        _column_chart("chart-satisfaction", "Satisfaction per side", desc, groups,
                      y_max=5, ticks=[0, 1, 2, 3, 4, 5], legend=series),
    )
    table = _table("Ratings (table for the chart above)",
                   ["side", "measure", "value", "95% CI", "n"], rows,
                   [False, False, True, True, True])
    return f"<h2>Satisfaction</h2>{chart}{table}"


def _learned_list(items: Sequence[LearnedText]) -> str:
    if not items:
        return '<p class="muted">No final evaluations yet.</p>'
    lis = "".join(
        f'<li><span class="count">{i.count}×</span> {_e(i.text)}</li>' for i in items
    )
    return f'<ul class="learned">{lis}</ul>'


def _section_learned(r: CohortReport) -> str:
    return (
        "<h2>What people learned</h2>"
        '<div class="callout learned" role="note"><h3>What mentors learned</h3>'
        '<p class="muted">Peer mentoring is two-way: knowledge flows to the mentor too.</p>'
        f"{_learned_list(r.learned.mentor)}</div>"
        f"<h3>What mentees learned</h3>{_learned_list(r.learned.mentee)}"
    )


def _section_exits(r: CohortReport) -> str:
    e = r.exits
    reasons = list(e.by_reason.items())
    desc = (
        f"{e.exited.successes} of {e.exited.n} pairings exited. "
        + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in reasons)
    )
    chart = _figure(
        "Exits by reason",
        _bar_rows_chart("chart-exits", "Exits by reason", desc,
                        [(k.replace("_", " "), v) for k, v in reasons], VERMILION),
    )
    summary = (
        f"<p>{e.exited.successes} of {e.exited.n} pairings exited "
        f"({_e(_pct(e.exited.rate))}, 95% CI {_e(_ci(e.exited.ci_low, e.exited.ci_high))}); "
        f"{e.followed_by_rematch} of them were followed by a rematch. Exits are no-fault; the "
        "reason is seen by operations only.</p>"
    )
    tables = "".join([
        _table("Exits by reason (table for the chart above)", ["reason", "exits"],
               [[_e(k), str(v)] for k, v in reasons], [False, True]),
        _table("Exits by phase", ["phase at exit", "exits"],
               [[_e(k), str(v)] for k, v in e.by_phase.items()], [False, True]),
        _table("Exits by initiator", ["initiated by", "exits"],
               [[_e(k), str(v)] for k, v in e.by_initiator.items()], [False, True]),
    ])
    x = r.cross_functional
    cross = (
        "<h2>Across functions</h2>"
        f"<p>{x.share.successes} of {x.share.n} pairs with both departments known pair people "
        f"from different departments ({_e(_pct(x.share.rate))}, 95% CI "
        f"{_e(_ci(x.share.ci_low, x.share.ci_high))}); {x.unknown_department} "
        "pairing(s) have an unknown department.</p>"
    )
    return f'<h2>Exits</h2>{summary}{chart}<div class="cols">{tables}</div>{cross}'


def to_html(report: CohortReport) -> str:
    """One self-contained, printable HTML page with inline SVG charts and data tables."""
    r = report
    body = "".join([
        f"<h1>{_e(r.program_name)}</h1>",
        f'<p class="meta">Cohort <strong>{_e(r.cohort_id)}</strong> · as of '
        f"{_e(r.as_of.isoformat())} · {int(r.confidence * 100)}% confidence intervals · "
        f"{_e(r.report_version)}</p>",
        _section_objective(r),
        _section_before_after(r),
        _section_counts(r),
        _section_retention(r),
        _section_goals(r),
        _section_meetings(r),
        _section_satisfaction(r),
        _section_learned(r),
        _section_exits(r),
        '<p class="muted">Proportions: Wilson score intervals; means: Student-t intervals. '
        "“Above” or “below baseline” only when the whole interval lies on one side. "
        "Definitions: docs/evaluation.md.</p>",
    ])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No scripts and no external loads: the page can be mailed or archived as is.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(r.program_name)} — cohort {_e(r.cohort_id)}</title>"
        f"<style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )
