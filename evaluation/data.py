"""Where the labelled data lives and the deterministic held-out split used for tuning.

The data folder is ``$CONTENTSTREAM_DATA_DIR`` or ``../shared/data`` beside the repository.
Every tuning script trains on the rows where :func:`is_held_out` is false and reports on
the others, so scores printed by ``python -m evaluation`` are on text no tuning saw.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

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
