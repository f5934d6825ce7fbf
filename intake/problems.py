"""One shape for every input problem, so a coordinator sees them all at once, each pointing at
a file, a line and a column (a CSV column name, or a YAML key path such as
``matching.weights.skills``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(str(self.line))
        if self.column:
            where.append(self.column)
        return f"{':'.join(where)}: {self.message}"


class IntakeError(Exception):
    """Input files that cannot be used as they are; ``problems`` lists every one found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        # Kept in the order found (by file, then line, then column checks), without repeats.
        self.problems: tuple[Problem, ...] = tuple(dict.fromkeys(problems))
        if not self.problems:
            raise ValueError("IntakeError needs at least one problem")
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the input"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))
