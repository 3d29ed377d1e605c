"""Where the labelled data lives and the deterministic held-out split used for tuning.

The data folder is ``$CONTENTSTREAM_DATA_DIR`` or ``../shared/data`` beside the repository.
Every tuning script trains on the rows where :func:`is_held_out` is false and reports on
the others, so scores printed by ``python -m evaluation`` are on text no tuning saw.

Training scripts read their files through :func:`load_rows` and wrap ``main`` in
:func:`exit_on_data_error`: a missing or malformed file then stops the script with one
line naming it and exit status 2 (see the section "training input" below).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson

from schemas.errors import ConfigurationError

P = ParamSpec("P")
R = TypeVar("R")

REPO_ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_BUCKETS = 5


def default_data_dir() -> Path:
    env = os.environ.get("CONTENTSTREAM_DATA_DIR")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def is_held_out(text: str) -> bool:
    """One fifth of the rows, chosen by a stable hash of the text."""
    digest = hashlib.md5(text.encode("utf-8")).hexdigest()
    return int(digest, 16) % HELD_OUT_BUCKETS == 0


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                row = orjson.loads(line)
                if isinstance(row, dict):
                    yield row


def split_rows(
    rows: list[dict[str, Any]], key: str = "text"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(tuning rows, held-out rows)``."""
    tune = [r for r in rows if not is_held_out(str(r[key]))]
    held = [r for r in rows if is_held_out(str(r[key]))]
    return tune, held


# --------------------------------------------------------------------------- training input
#
# Shared by every training script (scripts/train_*.py, scripts/build_*.py): a missing or
# malformed data file must stop the script with ONE line that names the file, and exit
# status 2, never a traceback. Use it like this:
#
#     from evaluation.data import DataFileError, load_rows, exit_on_data_error
#
#     @exit_on_data_error
#     def main() -> int:
#         rows = load_rows(data_dir / "ner/x.jsonl", {"text": str, "entities": list})
#         ...
#
# or call ``check_rows(path, rows, fields)`` on rows read another way, or raise
# ``DataFileError(path, "why")`` yourself; ``exit_on_data_error`` turns any of them into
# ``error: <path>: <why>`` on stderr and ``SystemExit(2)``.

DATA_ERROR_EXIT = 2
FieldTypes = Mapping[str, type | tuple[type, ...]]


class DataFileError(ConfigurationError):
    """A training or evaluation data file is missing, unreadable or not what it should be."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return self.message


def check_row(path: Path, line: int, row: object, fields: FieldTypes) -> dict[str, Any]:
    """``row`` if it is a JSON object with every field of ``fields`` of its type."""
    if not isinstance(row, dict):
        raise DataFileError(path, f"line {line}: expected a JSON object, got {type(row).__name__}")
    for name, kind in fields.items():
        if name not in row:
            raise DataFileError(path, f"line {line}: missing field {name!r}")
        value = row[name]
        # bool is an int subclass: a label of true/false is a malformed file, not a 1/0.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
            raise DataFileError(
                path, f"line {line}: field {name!r} is {type(value).__name__}, not {_names(kind)}"
            )
    return row


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _types(kind))


def load_rows(path: Path, fields: FieldTypes | None = None) -> list[dict[str, Any]]:
    """Every row of a JSON Lines file, each checked against ``fields`` (name -> type).

    Raises :class:`DataFileError` (naming the file and the line) when the file is missing,
    unreadable, not UTF-8 JSON Lines, empty, or a row lacks a field or has the wrong type.
    """
    if not path.is_file():
        raise DataFileError(path, "missing (set CONTENTSTREAM_DATA_DIR or --data-dir)")
    rows: list[dict[str, Any]] = []
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise DataFileError(path, f"line {number}: not JSON ({exc})") from None
                rows.append(check_row(path, number, row, fields or {}))
    except OSError as exc:
        raise DataFileError(path, f"unreadable ({exc.strerror or exc})") from None
    if not rows:
        raise DataFileError(path, "no rows")
    return rows


def exit_on_data_error(main: Callable[P, R]) -> Callable[P, R]:
    """Decorator for a script's ``main``: a :class:`DataFileError` becomes one line on
    stderr (``error: <path>: <why>``) and exit status 2."""

    @functools.wraps(main)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return main(*args, **kwargs)
        except DataFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(DATA_ERROR_EXIT) from None

    return wrapped
