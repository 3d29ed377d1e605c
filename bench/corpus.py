"""The benchmark input: the shared Chinese corpus, or the shipped examples without it.

Full mode reads all of ``corpus/zh_mixed.jsonl``; quick mode a fixed, seeded sample of
it. The long variant is every document of at least ``LONG_CHARS`` characters (sampled
in quick mode too). A fresh clone has no data folder: then the texts of
``examples/events.jsonl`` stand in, so the benchmark still runs (its numbers are then
about a dozen short texts repeated and say little).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILE = Path("corpus") / "zh_mixed.jsonl"
EXAMPLES_FILE = REPO_ROOT / "examples" / "events.jsonl"
LONG_CHARS = 1000
QUICK_SAMPLE = 6000
QUICK_LONG_SAMPLE = 120
SAMPLE_SEED = 20240601


@dataclass(frozen=True, slots=True)
class Corpus:
    texts: list[str]
    long_texts: list[str]
    source: str

    @property
    def mean_chars(self) -> float:
        return sum(map(len, self.texts)) / max(len(self.texts), 1)

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "docs": len(self.texts),
            "mean_chars": round(self.mean_chars, 1),
            "long_docs": len(self.long_texts),
            "long_min_chars": LONG_CHARS,
        }


def data_dir() -> Path:
    """``$CONTENTSTREAM_DATA_DIR``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("CONTENTSTREAM_DATA_DIR")
    return Path(env) if env else (REPO_ROOT / ".." / "shared" / "data").resolve()


def _texts_of(path: Path) -> Iterator[str]:
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            text = row.get("text") if isinstance(row, dict) else None
            if isinstance(text, str) and text.strip():
                yield text


def load_corpus(
    *,
    quick: bool,
    directory: Path | None = None,
    examples: Path = EXAMPLES_FILE,
    sample: int = QUICK_SAMPLE,
    long_sample: int = QUICK_LONG_SAMPLE,
) -> Corpus:
    path = (directory if directory is not None else data_dir()) / CORPUS_FILE
    if path.is_file():
        texts = list(_texts_of(path))
        source = str(path)
    else:
        texts = list(_texts_of(examples)) if examples.is_file() else []
        source = f"{examples} (fallback: {path} not found)"
    if not texts:
        raise FileNotFoundError(f"no benchmark texts: neither {path} nor {examples} has any")
    long_texts = [t for t in texts if len(t) >= LONG_CHARS]
    if quick:
        rng = random.Random(SAMPLE_SEED)
        if len(texts) > sample:
            texts = rng.sample(texts, sample)
        if len(long_texts) > long_sample:
            long_texts = rng.sample(long_texts, long_sample)
    return Corpus(texts=texts, long_texts=long_texts, source=source)


def numbered_texts(texts: list[str], count: int) -> list[str]:
    """``count`` texts made unique by their index (wrapping around ``texts``): a repeat
    would be answered from the dedup store or the worker's recent-analysis map instead
    of analysed, flattering rate and latency."""
    return [f"{t} [{i}]" for i, t in enumerate(take(texts, 0, count))]


def take(texts: list[str], start: int, count: int) -> list[str]:
    """``count`` texts from ``start``, wrapping around: phases get disjoint slices while
    the corpus lasts, so one phase's dedup entries do not answer the next phase."""
    if not texts:
        return []
    return [texts[(start + i) % len(texts)] for i in range(count)]
