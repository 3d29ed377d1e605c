"""English lexicon sentiment with VADER's rules (negation, boosters, "but", emphasis).

The UCI sentences the English model is trained on are 1,000 phone-accessory reviews;
a lexicon carries the model to other review domains (films, restaurants) where those
words never occur. The rules follow VADER (Hutto & Gilbert, 2014), reimplemented
compactly; the word list is VADER's (MIT) plus a small review-domain list written for
this project. The tokeniser also marks words inside a negation scope (``not_good``) for
the word features of the trained model.
"""

from __future__ import annotations

import itertools
import math
import re
import string
from dataclasses import dataclass
from pathlib import Path

VADER_LEXICON_FILE = "vader_lexicon.tsv"
REVIEW_LEXICON_FILE = "en_review_lexicon.tsv"

_BOOST = 0.293
_CAPS_BOOST = 0.733
_NEGATION_SCALE = -0.74
_COMPOUND_ALPHA = 15.0
_PUNCT = string.punctuation

NEGATORS = frozenset(
    "aint arent cannot cant couldnt darent didnt doesnt dont hadnt hasnt havent isnt "
    "mightnt mustnt neither neednt never none nope nor not nothing nowhere oughtnt shant "
    "shouldnt wasnt werent without wont wouldnt rarely seldom no".split()
)
BOOSTERS: dict[str, float] = {
    **dict.fromkeys(
        "absolutely amazingly awfully completely considerably decidedly deeply enormously "
        "entirely especially exceptionally extremely fabulously greatly highly hugely "
        "incredibly intensely majorly most particularly purely quite really remarkably so "
        "substantially thoroughly totally tremendously unbelievably unusually utterly very "
        "super truly seriously way".split(),
        _BOOST,
    ),
    **dict.fromkeys(
        "almost barely hardly kinda less little marginally occasionally partly scarcely "
        "slightly somewhat sorta".split(),
        -_BOOST,
    ),
}
# Words that end a negation scope for the word features.
_SCOPE_END = frozenset({"but", "however", "although", "though", "yet"})
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?|[.,;:!?]")


def _load_lexicon(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip() or line.startswith("# "):
                continue
            token, valence = line.rstrip("\n").split("\t")[:2]
            found[token] = float(valence)
    return found


@dataclass(frozen=True, slots=True)
class LexiconScore:
    compound: float  # VADER's normalised sum, -1..1
    positive: float  # sum of positive valences after the rules
    negative: float  # sum of negative valences (as a positive number)


class EnglishLexicon:
    def __init__(self, valences: dict[str, float]) -> None:
        self.valences = valences

    @classmethod
    def load(cls, model_dir: Path) -> EnglishLexicon:
        valences = _load_lexicon(model_dir / VADER_LEXICON_FILE)
        # The review list wins where both have a word: its valence is the word's sense in
        # reviews and complaints ("delayed", "freezes"), VADER's a general one.
        valences.update(_load_lexicon(model_dir / REVIEW_LEXICON_FILE))
        return cls(valences)

    def score(self, text: str) -> LexiconScore:
        raw = text.split()
        words: list[str] = []
        for token in raw:
            stripped = token.strip(_PUNCT)
            # Short tokens keep their punctuation: they are emoticons such as ":)".
            words.append(token if len(stripped) <= 2 else stripped)
        lowered = [w.lower() for w in words]
        has_lower = any(w.islower() for w in words)
        sentiments: list[float] = []
        but_at = -1
        for i, word in enumerate(lowered):
            if word == "but" and but_at < 0:
                but_at = i
            valence = self.valences.get(word)
            if valence is None or word in BOOSTERS:
                sentiments.append(0.0)
                continue
            if has_lower and words[i].isupper() and len(words[i]) > 1:
                valence += _CAPS_BOOST if valence > 0 else -_CAPS_BOOST
            for distance in (1, 2, 3):
                if i - distance < 0:
                    break
                before = lowered[i - distance]
                boost = BOOSTERS.get(before)
                if boost is not None:
                    scaled = boost * (1.0 - 0.05 * (distance - 1))
                    valence += scaled if valence > 0 else -scaled
                if before in NEGATORS or before.endswith("n't"):
                    valence *= _NEGATION_SCALE
            sentiments.append(valence)
        if but_at >= 0:
            sentiments = [
                s * 0.5 if i < but_at else s * 1.5 if i > but_at else s
                for i, s in enumerate(sentiments)
            ]
        total = sum(sentiments)
        if total:
            emphasis = min(text.count("!"), 4) * 0.292
            total += emphasis if total > 0 else -emphasis
        compound = total / math.sqrt(total * total + _COMPOUND_ALPHA)
        positive = sum(s for s in sentiments if s > 0)
        negative = -sum(s for s in sentiments if s < 0)
        return LexiconScore(compound, positive, negative)


def negation_marked_words(text: str) -> list[str]:
    """Lower-case words; inside a negation scope (up to punctuation or "but") ``not_word``."""
    out: list[str] = []
    negated = False
    for token in _WORD.findall(text.lower().replace("’", "'")):
        if token in ".,;:!?" or token in _SCOPE_END:
            negated = False
            continue
        out.append("not_" + token if negated else token)
        if token in NEGATORS or token.endswith("n't"):
            negated = True
    return out


def word_terms(text: str) -> list[str]:
    """The English model's terms: negation-marked words and their adjacent pairs."""
    words = negation_marked_words(text)
    return [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]
