"""The Chinese lexicon scorer: negation, degree, intensifier, contrast and aspect rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analyzers.sentiment_zh_lexicon import ChineseLexicon, _alternation

MODEL_DIR = Path(__file__).resolve().parents[2] / "analyzers" / "models" / "sentiment"

SMALL = ChineseLexicon(
    {"满意": 1.0, "开心": 1.0, "厉害": 2.0, "差": -1.0, "差不多": 0.0, "贵": -1.0, "失望": -2.0}
)


def compound(text: str, lexicon: ChineseLexicon = SMALL) -> float:
    return lexicon.score(text).compound


def test_plain_words_and_unknown_text() -> None:
    assert compound("很满意") > 0
    assert compound("质量差") < 0
    assert SMALL.score("今天去了公园") == SMALL.score("")
    assert compound("") == 0.0


def test_negation_flips_and_weakens() -> None:
    assert compound("不满意") < 0
    assert compound("不太满意") < 0
    assert abs(compound("不满意")) < abs(compound("满意"))
    # 不错 / 不过 start ordinary words: no negation of what follows.
    assert compound("不过很满意") > 0


def test_degree_and_intensifier_strengthen() -> None:
    assert compound("非常满意") > compound("满意") > compound("有点满意") > 0
    assert compound("开心得不得了") > compound("开心") > 0
    assert compound("太厉害了！") > 0


def test_zero_valence_words_block_their_polar_substring() -> None:
    assert compound("差不多") == 0.0
    assert compound("价格差不多") == 0.0


def test_contrast_weighs_what_follows() -> None:
    assert compound("很满意，但是太贵了") < 0
    assert compound("太贵了，但是很满意") > 0


def test_aspect_adjective_pairs() -> None:
    assert compound("性价比高") > 0
    assert compound("价格高") < 0
    assert compound("性价比不算高") < 0
    assert compound("价格不高") > 0
    # 高兴 is a word of its own, not 高.
    assert SMALL.score("价格高兴").negative == 0.0


def test_matrix_matches_score() -> None:
    texts = ["很满意", "", "性价比不算高，失望"]
    rows = SMALL.matrix(texts)
    for text, row in zip(texts, rows, strict=True):
        s = SMALL.score(text)
        assert row.tolist() == [s.compound, s.positive, s.negative]


@pytest.mark.parametrize(
    "words",
    [["一点也不", "一点都不", "一", "不"], ["差", "差不多", "差劲"], ["a.b", "a", "[x]"]],
)
def test_trie_alternation_matches_longest_word(words: list[str]) -> None:
    pattern = re.compile(_alternation(words))
    for word in words:
        match = pattern.match(word + "后")
        assert match is not None and match.group() == word


def test_shipped_lexicon_loads_and_reads_posts() -> None:
    lexicon = ChineseLexicon.load(MODEL_DIR)
    assert len(lexicon.valences) > 300
    assert compound("孩子开心得不得了！", lexicon) > 0
    assert compound("这款手机续航一般，性价比不算高。", lexicon) < 0
    assert compound("快递很快，包装完好，非常满意", lexicon) > 0
