"""Sentence splitting for Chinese, English and mixed text.

Chinese sentences end at 。！？；… (full or half width !?), together with any closing
quotes or brackets that follow; English ones at . ! ? unless the full stop belongs to a
decimal number (3.14), an abbreviation (Dr., e.g., U.S.) or is followed by a lower-case
word. Scientific Chinese often ends sentences with a half-width full stop directly
followed by the next Han character ("方法.仿真结果表明"), which counts as a boundary.
Line breaks always end a sentence. One regex pass finds candidate boundaries; only the
full stops need a second look (a bounded window around each), so the cost is linear and
small, also on hostile text (long whitespace, thousands of full stops).
"""

from __future__ import annotations

import re

# Candidate ends: a run of terminators, then closing quotes/brackets; or a line break
# with the whitespace after it. Not ``\s*\n\s*``: on a long run of whitespace without a
# newline that retries the run from every position (quadratic: 15 s for 100k spaces).
# Whitespace before the break needs no match: the sentence it trails is stripped anyway.
_BOUNDARY = re.compile(
    r"(?:[。！？!?；]+|…+|\.{3,}|\.)[”’」』）)\]】》\"']*|\n\s*",
)
_SPACE_RUN = re.compile(r"\s*")
_CLOSERS = "”’」』）)]】》\"'"
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "cf",
        "al",
        "fig",
        "figs",
        "no",
        "nos",
        "vol",
        "pp",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "univ",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "u.s",
        "u.k",
        "a.m",
        "p.m",
        "approx",
        "est",
        "min",
        "max",
        "gen",
        "gov",
        "rep",
        "sen",
        "rev",
    ]
)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_full_stop_boundary(text: str, dot: int, end: int) -> bool:
    """``text[dot] == '.'`` ends a sentence; ``end`` is past any closers."""
    before = text[dot - 1] if dot > 0 else ""
    after = text[end] if end < len(text) else ""
    if before.isdigit() and after.isdigit():
        return False  # decimal number
    if after and after.isascii() and (after.isalnum() or after in "@/_-"):
        return False  # e.g. "example.com", "v1.2b", "U.S.A"
    match = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if match is not None:
        word = match.group(1).lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            return False
    if after.isspace():
        # Not ``text[end:].lstrip()``: copying the rest of the text at every full stop
        # is quadratic in the number of sentences.
        run = _SPACE_RUN.match(text, end)
        after_space = run.end() if run is not None else end
        following = text[after_space : after_space + 1]
        if following and following.isascii() and following.islower():
            return False
    return True


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, surrounding whitespace excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group().rstrip(_CLOSERS) == "." and not _is_full_stop_boundary(
            text, match.start(), end
        ):
            continue
        _append(text, start, end, spans)
        start = end
    _append(text, start, len(text), spans)
    return spans


def _append(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        if spans and all(ch in _CLOSERS for ch in text[start:end]):
            # A stray closer belongs to the previous sentence.
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order, each stripped of surrounding whitespace."""
    return [text[s:e] for s, e in sentence_spans(text)]
