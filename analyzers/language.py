"""Language identification by script: cheap enough for every event.

Chinese is told apart by Han characters, English by Latin letters; a text with a real
share of both is ``mixed``; text in other scripts (Cyrillic, Kana, Hangul, Arabic, ...)
or with no letters at all is ``other``. Counting code points is ~100x faster than an
n-gram model and is right for the zh/en traffic this processor serves. The counts are
made by compiled regexes (C loops) and only over a bounded prefix of long texts, so
the cost per document stays a few microseconds. Letters of other scripts are only
counted when a fair share of the text is neither ASCII nor Han.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

VERSION = "script-2"

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Letters of other scripts: word characters that are not digits, _, ASCII or Han.
_OTHER_LETTER_RUN = re.compile(
    r"(?:(?![\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])[^\W\d_\x00-\x7f])+"
)
# Japanese kana: text with kana is Japanese even though it is mostly Han.
_KANA_RUN = re.compile(r"[\u3040-\u30ff]+")

# A prefix this long decides the language of any realistic document.
_SAMPLE_CHARS = 600


def _count(pattern: re.Pattern[str], text: str) -> int:
    return sum(map(len, pattern.findall(text)))


class LanguageDetector:
    name = "language"
    version = VERSION

    def __init__(self, *, mixed_min_share: float = 0.2) -> None:
        self.mixed_min_share = mixed_min_share

    def detect(self, text: str) -> str:
        """``zh``, ``en``, ``mixed`` (real shares of both) or ``other``."""
        sample = text[:_SAMPLE_CHARS]
        ascii_bytes = sample.encode("ascii", "ignore")
        latin = len(ascii_bytes) - len(ascii_bytes.translate(None, _ASCII_LETTERS))
        han = _count(_HAN_RUN, sample)
        # Only look for letters of other scripts when there are non-ASCII, non-Han chars
        # in number (punctuation and emoji are the usual ones; they cost one regex pass).
        rest = len(sample) - len(ascii_bytes) - han
        other = (
            _count(_OTHER_LETTER_RUN, sample) if rest * 4 > len(sample) or not (han or latin) else 0
        )
        kana = _count(_KANA_RUN, sample) if other else 0
        # A Han character carries about as much as a 3-letter English word chunk.
        han_weight = han * 3
        total = han_weight + latin + other
        if total == 0:
            return "other"
        if other > total * 0.5 or (kana and kana * 5 >= han):
            return "other"
        zh_share = han_weight / total
        en_share = latin / total
        if zh_share >= self.mixed_min_share and en_share >= self.mixed_min_share:
            return "mixed"
        if han_weight >= latin:
            return "zh"
        return "en"

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[str]:
        return [self.detect(t) for t in texts]
