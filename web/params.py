"""Shapes of what callers send that the domain does not check itself.

Ids in paths and queries are plain (letters, digits, ``. _ : -``). No text may hold a NUL
character: Postgres cannot store one, and a NUL reaching an event would fail its append and
park the workflow, so it is refused here with a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="letters, digits, . _ : -")]
QueryId = Annotated[str | None, Query(pattern=ID_PATTERN)]


def nul_at(value: Any, where: str = "") -> str | None:
    """The path of the first string holding a NUL character, if any."""
    if isinstance(value, str):
        return where or "value" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = nul_at(str(key), where) or nul_at(item, f"{where}.{key}" if where else str(key))
            if found:
                return found
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = nul_at(item, f"{where}[{i}]")
            if found:
                return found
    return None


class Body(BaseModel):
    """Base of request bodies: unknown fields and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_nul(self) -> Body:
        found = nul_at(self.model_dump(mode="json"))
        if found:
            raise ValueError(f"{found} contains a NUL character")
        return self
