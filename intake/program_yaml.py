"""program.yaml -> ProgramSpec, with every problem located by line and key path."""

from __future__ import annotations

import difflib
import re
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from domain.program import ProgramSpec, SpecError
from intake._text import read_text
from intake.problems import IntakeError, Problem

Loc = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

# Limits for an untrusted upload: the example program is under 3 KB, the largest real one a
# few tens of KB. Nesting deeper than any section of ProgramSpec has no use either, and each
# level costs a Python stack frame in the parser.
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 20
_NO_ALIASES = (
    "anchors and aliases (&name, *name, <<) are not allowed in a program file: "
    "write each value out"
)


class _Refused(yaml.composer.ComposerError):
    """A document the reader will not build, with the mark of the node that breaks the rule."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars. PyYAML follows YAML 1.1, where an option ``no``
    becomes False and ``meeting_time: 10:00`` becomes the base-60 integer 600 (which pydantic
    would read as ten minutes past midnight). Dates stay strings so that pydantic, not the
    YAML parser, rejects ``2027-02-30`` with a located message.

    It also refuses anchors and aliases: a nine-line file whose aliases nest nine-fold seven
    times expands to millions of nodes (the "billion laughs"), and a program file never needs
    them. The check runs while composing, before anything is expanded."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(None, None, _NO_ALIASES, event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                None, None, f"nested deeper than the limit of {MAX_DEPTH} levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in {_BOOL, _INT, _FLOAT, _TIMESTAMP}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def format_path(loc: Loc) -> str:
    """('questionnaire', 'questions', 2, 'options') -> 'questionnaire.questions[2].options'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _index(
    node: yaml.Node, path: Loc, lines: dict[Loc, int], problems: list[Problem], label: str
) -> None:
    """Line of every key and item (1-based), and duplicate keys (PyYAML keeps the last one
    silently, which hides typos in long files)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(
                        label,
                        line,
                        format_path((*path, key)),
                        f"duplicate key '{key}' (first on line {seen[key]})",
                    )
                )
                continue
            seen[key] = line
            lines[(*path, key)] = line
            _index(value_node, (*path, key), lines, problems, label)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, problems, label)


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that the mapping at ``loc`` is validated against, if there is one."""
    current: Any = ProgramSpec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif get_origin(current) in (tuple, list) and isinstance(part, int):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _message(error: Any, loc: Loc) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and not isinstance(
        error.get("ctx", {}).get("error"), SpecError
    ):
        message += f" (got {value!r})"
    return message


def _validation_problems(exc: ValidationError, lines: dict[Loc, int], label: str) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, SpecError):
            loc = (*loc, *cause.path)  # point at the key, not at the whole section
        problems.append(
            Problem(label, _line_for(loc, lines), format_path(loc) or None, _message(error, loc))
        )
    return problems


def check_program(path: str | Path) -> tuple[ProgramSpec | None, list[Problem]]:
    """Parse and validate; never raises for bad input (problems are returned)."""
    label = str(path)
    text, problems = read_text(path, label, max_bytes=MAX_FILE_BYTES)
    if text is None:
        return None, problems
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks every character first (ReaderError)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (column {mark.column + 1})" if mark is not None else ""
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
        return None, [Problem(label, mark.line + 1 if mark else 1, None, f"{what}{where}")]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        before = text[: exc.position]
        column = exc.position - (before.rfind("\n") + 1) + 1
        return None, [
            Problem(
                label,
                before.count("\n") + 1,
                None,
                f"character U+{exc.character:04X} is not allowed in YAML (column {column})",
            )
        ]
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        return None, [Problem(label, 1, None, f"invalid YAML: {exc}")]
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        return None, [Problem(label, 1, None, "the file is empty")]
    if not isinstance(data, dict):
        return None, [
            Problem(
                label,
                node.start_mark.line + 1,
                None,
                "expected a mapping of keys (name:, objective:, ...) at the top",
            )
        ]
    lines: dict[Loc, int] = {}
    _index(node, (), lines, problems, label)
    try:
        spec = ProgramSpec.model_validate(data)
    except ValidationError as exc:
        problems += _validation_problems(exc, lines, label)
        return None, sorted(problems, key=lambda p: p.line or 0)
    return (None if problems else spec), problems


def load_program(path: str | Path) -> ProgramSpec:
    """Read program.yaml; raise ``IntakeError`` listing every problem."""
    spec, problems = check_program(path)
    if problems or spec is None:
        raise IntakeError(problems)
    return spec
