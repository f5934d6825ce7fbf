"""Reading an input file as text: UTF-8 with or without a byte-order mark (Excel adds one),
refusing files larger than the reader's cap before reading them (an upload is untrusted)."""

from __future__ import annotations

from pathlib import Path

from intake.problems import Problem


def read_text(path: str | Path, label: str, *, max_bytes: int) -> tuple[str | None, list[Problem]]:
    try:
        with Path(path).open("rb") as handle:
            # One byte past the cap tells "too large" without reading the rest of the file.
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        return None, [Problem(label, None, None, f"cannot read the file: {exc.strerror or exc}")]
    if len(raw) > max_bytes:
        return None, [
            Problem(label, 1, None, f"the file is larger than the limit of {max_bytes:,} bytes")
        ]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start]
        message = f"not valid UTF-8 (byte 0x{byte:02x}); save or export the file as UTF-8"
        return None, [Problem(label, line, None, message)]
