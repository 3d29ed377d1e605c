"""English entity data (CoNLL-2003) and the held-out quality of the English tagger.

``conll2003_train.jsonl`` trains; its documents (a headline, then a dateline such as
``BRUSSELS 1996-08-22``, then the story) are split by a stable hash into train and tune
(15%, for choosing settings). ``conll2003_dev.jsonl`` (CoNLL's eng.testa) is only ever
scored, never trained or tuned on. Scores are exact-span micro precision / recall / F1
over PER, LOC and ORG (the analyzer drops MISC), on the character offsets of the text.

    python -m evaluation.entities_en
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evaluation.data import DataFileError, default_data_dir, load_rows

TRAIN_FILE = "ner_en/conll2003_train.jsonl"
DEV_FILE = "ner_en/conll2003_dev.jsonl"
TUNE_PERCENT = 15
SCORED_KINDS = ("PER", "LOC", "ORG")
Span = tuple[int, int, str]
EnSplit = Literal["train", "tune"]

_DATELINE = re.compile(r"^[A-Z][A-Za-z .,'/-]* \d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class EnSentence:
    text: str
    spans: tuple[Span, ...]  # PER / LOC / ORG / MISC
    document: int


def read_conll(path: Path) -> list[EnSentence]:
    """Sentences with their spans (CoNLL type, MISC included) and document number.

    Raises :class:`DataFileError` naming the file when it is missing or malformed."""
    rows = load_rows(path, {"text": str, "entities": list})
    out: list[EnSentence] = []
    document = 0
    for number, row in enumerate(rows, 1):
        text: str = row["text"]
        # The headline before a dateline opens a new document.
        if _DATELINE.match(text) and out:
            document += 1
            headline = out.pop()
            out.append(EnSentence(headline.text, headline.spans, document))
        spans: list[Span] = []
        try:
            for ent in row["entities"]:
                start, end, kind = int(ent["start"]), int(ent["end"]), str(ent["type"])
                if text[start:end] != ent["text"] or start >= end:
                    raise ValueError(f"offsets {start}:{end} do not give {ent['text']!r}")
                spans.append((start, end, kind))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFileError(path, f"line {number}: bad entity ({exc})") from None
        out.append(EnSentence(text, tuple(sorted(spans)), document))
    return out


def split_of(document: int) -> EnSplit:
    digest = hashlib.sha1(f"conll2003-train-doc-{document}".encode()).digest()
    return "tune" if int.from_bytes(digest[:4], "big") % 100 < TUNE_PERCENT else "train"


def train_sentences(root: Path, splits: set[EnSplit]) -> list[EnSentence]:
    return [s for s in read_conll(root / TRAIN_FILE) if split_of(s.document) in splits]


def dev_sentences(root: Path) -> list[EnSentence]:
    return read_conll(root / DEV_FILE)


def prf(
    gold: Sequence[EnSentence], predicted: Sequence[Sequence[Span]], kinds: Sequence[str]
) -> dict[str, float]:
    tp = n_pred = n_gold = 0
    for sentence, spans in zip(gold, predicted, strict=True):
        want = {s for s in sentence.spans if s[2] in kinds}
        got = {s for s in spans if s[2] in kinds}
        tp += len(want & got)
        n_pred += len(got)
        n_gold += len(want)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1_micro": f1}


def evaluate(data_dir_: Path | None = None) -> list[dict[str, object]]:
    """Held-out rows of the shipped English tagger on conll2003_dev (all, and per type)."""
    from analyzers.entities import EntityRecognizer

    root = data_dir_ or default_data_dir()
    gold = dev_sentences(root)
    recognizer = EntityRecognizer.load()
    texts = [s.text for s in gold]
    results = recognizer.analyze_batch(texts, ["en"] * len(texts))
    predicted = [[(e.start, e.end, e.type) for e in ents] for ents in results]
    rows: list[dict[str, object]] = []
    dataset = "conll2003_dev (eng.testa, PER/LOC/ORG)"
    for metric, value in prf(gold, predicted, SCORED_KINDS).items():
        rows.append(
            {
                "task": "entities_en",
                "dataset": dataset,
                "metric": metric,
                "value": round(value, 4),
                "n": len(gold),
            }
        )
    for kind in SCORED_KINDS:
        rows.append(
            {
                "task": "entities_en",
                "dataset": f"conll2003_dev {kind}",
                "metric": "f1",
                "value": round(prf(gold, predicted, (kind,))["f1_micro"], 4),
                "n": len(gold),
            }
        )
    return rows


def main() -> None:
    for row in evaluate():
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
