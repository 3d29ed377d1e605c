"""A yardstick for bench/analyzers.py: the per-event jieba design of the seed tutorial.

The speed floors of the analyzers issue are absolute (2,000 docs/s on the corpus, 150 on
its long documents), and this machine's speed drifts by a third within an hour. Run
side by side with the pipeline, this engine turns a slow phase of the host into a slow
yardstick as well, so the ratio stays readable when the absolute figures move. It is
a rebuild of the design, not the tutorial's code: the issue quotes the tutorial's
engine at ~300 docs/s on the corpus and ~20 on long articles; this one is faster on the
corpus's short texts and about as fast on long ones (README, benchmark section).

Per event, one text at a time, as the tutorial did: ``jieba.posseg`` words with their
tags (entities are the nr / ns / nt words), ``jieba.analyse.extract_tags`` (TF-IDF
keywords, which segments again), and a word-lexicon sentiment over the posseg words
that answers neutral when no lexicon word occurs. Three of the five analyses. Its
quality is not the point (the evaluation measures jieba's tags as the entity baseline);
its cost is.
"""

from __future__ import annotations

from typing import Any

# A small lexicon of the kind the tutorial carried; only its lookups cost anything.
_POSITIVE = frozenset("好 喜欢 满意 不错 推荐 优秀 漂亮 方便 快 值得 开心 棒 赞 舒服 实惠".split())
_NEGATIVE = frozenset("差 失望 糟糕 难吃 慢 贵 垃圾 退货 后悔 问题 坑 烂 不好 投诉 恶心".split())
_ENTITY_FLAGS = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


class JiebaReferenceEngine:
    """``analyze(text)``: entities, keywords and sentiment of one text, per event."""

    def __init__(self) -> None:
        import jieba
        import jieba.analyse
        import jieba.posseg

        jieba.setLogLevel(60)  # the dictionary-cache banner is not benchmark output
        jieba.initialize()
        self._posseg = jieba.posseg.lcut
        self._keywords = jieba.analyse.extract_tags

    def analyze(self, text: str) -> dict[str, Any]:
        words = self._posseg(text)
        entities = [(w, _ENTITY_FLAGS[f]) for w, f in words if f in _ENTITY_FLAGS]
        keywords = self._keywords(text, topK=10, withWeight=True)
        score = sum((w in _POSITIVE) - (w in _NEGATIVE) for w, _ in words)
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        return {"entities": entities, "keywords": keywords, "sentiment": label}
