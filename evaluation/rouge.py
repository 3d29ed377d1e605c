"""ROUGE-1, ROUGE-2 and ROUGE-L (F-measure) at character level, for Chinese summaries.

Whitespace is ignored; every other character is a token, which is the usual way to score
Chinese summaries without a segmenter in the loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _chars(text: str) -> list[str]:
    return [ch for ch in text if not ch.isspace()]


def _f1(overlap: int, candidate_total: int, reference_total: int) -> float:
    if overlap == 0 or candidate_total == 0 or reference_total == 0:
        return 0.0
    precision = overlap / candidate_total
    recall = overlap / reference_total
    return 2 * precision * recall / (precision + recall)


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: str, reference: str, n: int) -> float:
    cand = _ngrams(_chars(candidate), n)
    ref = _ngrams(_chars(reference), n)
    overlap = sum((cand & ref).values())
    return _f1(overlap, sum(cand.values()), sum(ref.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    cand = _chars(candidate)
    ref = _chars(reference)
    return _f1(lcs_length(cand, ref), len(cand), len(ref))


def rouge_scores(candidate: str, reference: str) -> dict[str, float]:
    return {
        "rouge-1": rouge_n(candidate, reference, 1),
        "rouge-2": rouge_n(candidate, reference, 2),
        "rouge-l": rouge_l(candidate, reference),
    }
