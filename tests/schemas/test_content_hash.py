"""The fast text normalisation behind content_hash equals its definition."""

from __future__ import annotations

import random

import pytest

from schemas.content_hash import content_hash, normalise_text, normalise_text_reference

# Whitespace of every kind, full-width forms, compatibility characters, and pieces
# that NFKC composes (e + combining acute, Hangul jamo, = + combining long solidus).
PIECES = [
    " ", "\t", "\n", "\r", "\x0b", "\x1c", "\x85", "\xa0", "\u2003", "\u2028", "\u3000",
    "\ufeff", "\u200b", "ａ", "Ａ", "！", "，", "＝", "＜", "＇", "①", "ｶ", "ﾞ", "ﬁ", "Å",
    "e", "\u0301", "\u0338", "가", "\u1100", "\u1161", "x", "中", "。",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(5))
def test_fast_normalisation_equals_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14)))
        assert normalise_text(text) == normalise_text_reference(text), repr(text)


def test_width_and_spacing_variants_hash_alike() -> None:
    assert content_hash("  你好，世界！ ") == content_hash("你好,世界!")
    assert content_hash("ＡＢＣ\u3000d") == content_hash("ABC d")
    assert content_hash("你好") != content_hash("你们好")
