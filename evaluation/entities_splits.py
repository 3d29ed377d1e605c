"""The one definition of the entity-recognition data and its train / tune / test splits.

``scripts/train_entities.py`` and ``evaluation/entities.py`` both import it, so reported
scores are measured on sentences the model never saw. There is no People's Daily training
file: its dev file is split by a stable hash (sha1 of the text, never Python's per-process
``hash``) into test (30%), tune (10%, for choosing settings) and train (60%).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evaluation.data import DataFileError, load_rows

Split = Literal["train", "tune", "test"]
Span = tuple[int, int, str]  # start, end (exclusive), PER / LOC / ORG

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTITY_TYPES = ("PER", "LOC", "ORG")


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class NerSource:
    name: str
    path: str
    test_percent: int
    tune_percent: int
    # Source types that are kept (mapped through the file's `coarse` field); others are O.
    keep_types: frozenset[str] | None = None
    named_only: bool = False  # Weibo: keep NAM mentions, drop nominal ones (NOM)


# Resume's EDU (degrees) and CONT (nationalities, "中国国籍") map to ORG / LOC in the
# file's `coarse` field but are not names in the news sense, so they are dropped.
SOURCES: tuple[NerSource, ...] = (
    NerSource("peoples_daily", "ner/peoples_daily_dev.jsonl", 30, 10),
    NerSource("weibo_train", "ner/weibo_train.jsonl", 0, 0, named_only=True),
    NerSource("weibo_dev", "ner/weibo_dev.jsonl", 100, 0, named_only=True),
    NerSource("cluener", "ner/cluener_dev.jsonl", 20, 0),
    NerSource("resume_train", "ner/resume_train.jsonl", 0, 0, frozenset({"NAME", "ORG", "LOC"})),
    NerSource("cluener_train", "ner/cluener_train.jsonl", 0, 0),
    # Short People's Daily pieces, every one with an entity: training only.
    NerSource("renmin1998", "ner/renmin1998_fragments.jsonl", 0, 0),
    NerSource("msra", "ner/msra_train_part.jsonl", 25, 10),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}


def data_dir() -> Path:
    """``$CONTENTSTREAM_DATA_DIR``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("CONTENTSTREAM_DATA_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def bucket(text: str) -> int:
    """Stable 0..99 bucket of a text."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "big") % 100


def split_of(source: NerSource, text: str) -> Split:
    b = bucket(text)
    if b < source.test_percent:
        return "test"
    if b < source.test_percent + source.tune_percent:
        return "tune"
    return "train"


def _spans(record: dict[str, object], source: NerSource) -> tuple[Span, ...]:
    text = str(record["text"])
    out: list[Span] = []
    entities = record.get("entities") or []
    assert isinstance(entities, list)
    for ent in entities:
        coarse = ent.get("coarse")
        if coarse not in ENTITY_TYPES:
            continue
        if source.keep_types is not None and ent.get("type") not in source.keep_types:
            continue
        if source.named_only and ent.get("mention") == "NOM":
            continue
        start, end = int(ent["start"]), int(ent["end"])
        if text[start:end] != ent["text"] or start >= end:
            continue
        out.append((start, end, str(coarse)))
    out.sort()
    # Overlapping annotations cannot be tagged: keep the earlier / longer one.
    kept: list[Span] = []
    for span in out:
        if kept and span[0] < kept[-1][1]:
            continue
        kept.append(span)
    return tuple(kept)


def read_source(source: NerSource, root: Path | None = None) -> Iterator[tuple[Split, Sentence]]:
    """Raises ``evaluation.data.DataFileError`` naming the file when it is missing or
    malformed (a row without text / entities, or an entity without its fields)."""
    path = (root or data_dir()) / source.path
    for number, record in enumerate(load_rows(path, {"text": str, "entities": list}), 1):
        text = record["text"]
        try:
            spans = _spans(record, source)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataFileError(path, f"row {number}: bad entity ({exc!r})") from None
        yield split_of(source, text), Sentence(text, spans)


def sentences(name: str, splits: set[Split], root: Path | None = None) -> list[Sentence]:
    source = SOURCE_BY_NAME[name]
    return [s for split, s in read_source(source, root) if split in splits]
