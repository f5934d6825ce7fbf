"""Reading an input file as text: UTF-8 with or without a byte-order mark (Excel adds one)."""

from __future__ import annotations

from pathlib import Path

from intake.problems import Problem


def read_text(path: str | Path, label: str) -> tuple[str | None, list[Problem]]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return None, [Problem(label, None, None, f"cannot read the file: {exc.strerror or exc}")]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start]
        message = f"not valid UTF-8 (byte 0x{byte:02x}); save or export the file as UTF-8"
        return None, [Problem(label, line, None, message)]
