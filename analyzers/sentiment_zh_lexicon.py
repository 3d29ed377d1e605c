"""Chinese lexicon sentiment with negation, degree, contrast and aspect rules.

The character n-gram model (``analyzers.sentiment``) learnt its weights from reviews: it
reads "太…了" as a complaint (太差了, 太慢了) and "不" as bad news, so "太厉害了" and
"开心得不得了" come out negative and "性价比不算高" positive. A lexicon with the rules a
reader applies fixes those readings wherever the words are known, whatever the domain:

- polar words and phrases with a valence (``zh_lexicon.tsv``, written for this project);
  longest match first, so 突破 is not 破 and 差不多 (valence 0) is not 差;
- a negator in the four characters before a word (不, 没有, 不太, 不算, 并不 …) flips and
  weakens it: 不算高, 不太满意, 没问题;
- a degree adverb before it (很, 太, 非常, 特别 …) or an intensifier after it (得不得了,
  极了, 得很) strengthens it; 有点 / 比较 weaken it;
- "aspect + adjective" pairs whose polarity depends on the aspect: 性价比高 is good,
  价格高 bad, with the same negation and degree rules (性价比不算高 is bad);
- a contrast word (但是, 可是, 不过 …) halves what came before it and gives what follows
  one and a half times its weight, as VADER does for "but"; "!" adds emphasis.

The three scores (compound, positive sum, negative sum) enter the Chinese model as
stacked features whose weights are fitted on the tune split (scripts/train_sentiment.py).
Pure Python over one compiled regular expression per text; no segmentation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ZH_LEXICON_FILE = "zh_lexicon.tsv"

_NEGATION_SCALE = -0.7
_COMPOUND_ALPHA = 6.0
_EMPHASIS = 0.3
# Before a word, within the same clause and after the previous match (longest first).
NEGATORS = (
    "一点也不 一点都不 并不是 并没有 从来不 从来没 根本不 根本没 "
    "不太 不算 不够 不怎么 不是很 不是 没有 并不 并非 毫不 从不 绝不 决不 "
    "不 没 无 未 别"
).split()
# Single negator characters that start ordinary words: 不错, 不过, 无论, 没想到.
_NEGATOR_NOT_BEFORE = {
    "不": "错过但仅管论久少断停住得",
    "没": "想",
    "无": "论比敌限",
    "别": "人的",
}
DEGREE: dict[str, float] = {
    **dict.fromkeys(
        "非常 特别 十分 极其 极为 相当 超级 真的 实在 格外 尤其 太 很 超 真 好 极 最 挺 蛮 "
        "巨 贼 更".split(),
        1.4,
    ),
    **dict.fromkeys("有点 有些 稍微 略 比较 较 还算 还".split(), 0.7),
}
# After a word: 开心得不得了, 好极了, 舒服得很, 累死了.
INTENSIFIERS = tuple("得不得了 得要命 得很 极了 死了 爆了 透了 坏了".split())
CONTRAST = ("但是", "可是", "不过", "然而", "只是", "就是", "但", "却")
# "不但 / 不过如此" are not contrasts; checked before the contrast list.
_NOT_CONTRAST = ("不但", "不过如此", "就是说", "只是为了")
_CLAUSE = re.compile(r"[，。！？；,.!?;\n~…：:]+")
_WINDOW = 4

# Aspect + adjective: the adjective's direction (高 up, 低 down …) times the aspect's sign
# (up is good for 性价比, bad for 价格).
_GOOD_WHEN_HIGH = (
    "性价比 质量 品质 效率 分辨率 清晰度 满意度 评分 评价 颜值 档次 配置 续航 人气 口碑"
)
_BAD_WHEN_HIGH = "价格 价钱 售价 房价 油耗 噪音 噪声 费用 收费 运费 故障率 延迟 功耗"
ASPECTS: dict[str, float] = {
    **dict.fromkeys(_GOOD_WHEN_HIGH.split(), 1.0),
    **dict.fromkeys(_BAD_WHEN_HIGH.split(), -1.0),
}
ADJECTIVES: dict[str, float] = {"高": 1.0, "低": -1.0, "长": 1.0, "短": -1.0}
_ASPECT_GAP = 3


def _load(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, valence = line.split("\t")[:2]
        found[word.strip()] = float(valence)
    return found


_Trie = dict[str, "_Trie"]


def _alternation(words: Sequence[str]) -> str:
    """A regular expression matching the longest of ``words`` at a position, written as
    a trie (一点也不|一点都不 -> 一点(?:也不|都不)), so that alternatives share prefixes."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _trie_pattern(trie)


def _trie_pattern(node: _Trie) -> str:
    ends = "" in node
    branches = []
    singles = []
    for ch in sorted(k for k in node if k):
        rest = _trie_pattern(node[ch])
        if rest:
            branches.append(re.escape(ch) + rest)
        else:
            singles.append(re.escape(ch))
    if singles:
        branches.append(singles[0] if len(singles) == 1 else "[" + "".join(singles) + "]")
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 and not ends else "(?:" + "|".join(branches) + ")"
    # Greedy "?" tries the longer word first: a shorter word ends here only when no
    # longer one continues.
    return body + "?" if ends else body


@dataclass(frozen=True, slots=True)
class ZhLexiconScore:
    compound: float  # normalised sum, -1..1
    positive: float  # sum of positive valences after the rules
    negative: float  # sum of negative valences (as a positive number)


class ChineseLexicon:
    def __init__(self, valences: dict[str, float]) -> None:
        self.valences = valences
        modifiers = _alternation([*NEGATORS, *DEGREE])
        aspect = (
            f"(?P<aspect>{_alternation(list(ASPECTS))})"
            f"(?P<gap>(?:{modifiers}|的|也|都|还|就){{0,{_ASPECT_GAP}}})"
            f"(?P<adj>{_alternation(list(ADJECTIVES))})(?!兴)"
        )
        # The look-ahead on first characters lets the engine skip the many positions
        # where no word can start with one set test (3-4x faster on corpus text).
        first = "".join(sorted({w[0] for w in valences} | {w[0] for w in ASPECTS}))
        self._pattern = re.compile(
            f"(?=[{re.escape(first)}])(?:{aspect}|(?P<word>{_alternation(list(valences))}))"
        )
        self._negators = re.compile(
            "|".join(
                re.escape(n)
                + (f"(?![{_NEGATOR_NOT_BEFORE[n]}])" if n in _NEGATOR_NOT_BEFORE else "")
                for n in sorted(NEGATORS, key=lambda w: (-len(w), w))
            )
        )
        self._degree = re.compile(f"(?:{_alternation(list(DEGREE))})$")
        self._contrast = re.compile(_alternation([*_NOT_CONTRAST, *CONTRAST]))

    @classmethod
    def load(cls, model_dir: Path) -> ChineseLexicon:
        return cls(_load(model_dir / ZH_LEXICON_FILE))

    def _modifier(self, before: str) -> float:
        """Scale from what precedes a word in its clause (at most ``_WINDOW`` chars): a
        negator flips and weakens it, a degree adverb right before it (not the 太 of 不太)
        strengthens or weakens it."""
        scale = 1.0
        negator = None
        for found in self._negators.finditer(before):
            negator = found  # the last one counts
        if negator is not None:
            scale *= _NEGATION_SCALE
        degree = self._degree.search(before)
        if degree is not None and (negator is None or degree.start() >= negator.end()):
            scale *= DEGREE[degree.group()]
        return scale

    def score(self, text: str) -> ZhLexiconScore:
        total = positive = negative = 0.0
        contrast_at = -1
        for m in self._contrast.finditer(text):
            if m.group() not in _NOT_CONTRAST:
                contrast_at = m.start()
                break
        clause_start = 0
        clause_ends = [m.start() for m in _CLAUSE.finditer(text)]
        clause_i = 0
        last_end = 0
        for m in self._pattern.finditer(text):
            start = m.start()
            while clause_i < len(clause_ends) and clause_ends[clause_i] < start:
                clause_start = clause_ends[clause_i] + 1
                clause_i += 1
            if m.group("aspect") is not None:
                valence = ASPECTS[m.group("aspect")] * ADJECTIVES[m.group("adj")]
                before = text[max(clause_start, last_end, start - _WINDOW) : start]
                valence *= self._modifier(before + "，" + m.group("gap"))
            else:
                valence = self.valences[m.group()]
                if valence == 0.0:
                    last_end = m.end()
                    continue
                before = text[max(clause_start, last_end, start - _WINDOW) : start]
                valence *= self._modifier(before)
                if text.startswith(INTENSIFIERS, m.end()):
                    valence *= 1.4
            if contrast_at >= 0:
                valence *= 0.5 if start < contrast_at else 1.5
            last_end = m.end()
            total += valence
            if valence > 0:
                positive += valence
            else:
                negative -= valence
        if total:
            emphasis = min(text.count("!") + text.count("！"), 3) * _EMPHASIS
            total += emphasis if total > 0 else -emphasis
        compound = total / math.sqrt(total * total + _COMPOUND_ALPHA)
        return ZhLexiconScore(compound, positive, negative)

    def matrix(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """(compound, positive, negative) per text."""
        out = np.zeros((len(texts), 3), dtype=np.float64)
        for i, text in enumerate(texts):
            s = self.score(text)
            out[i] = (s.compound, s.positive, s.negative)
        return out
