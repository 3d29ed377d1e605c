from __future__ import annotations

import math
from pathlib import Path

import pytest

from analyzers.sentiment import ChineseCharNgramModel, NeutralRule, SentimentAnalyzer
from analyzers.sentiment_zh_lexicon import ChineseLexicon
from schemas.results import Sentiment

ZH_POSITIVE = [
    "这家酒店服务很好，房间干净，非常满意！",
    "味道很好吃，送餐也快，下次还会再点",
    "质量非常好，物超所值，推荐购买",
]
ZH_NEGATIVE = [
    "质量太差了，用了两天就坏了，非常失望",
    "送餐太慢了，菜都凉了，太难吃",
    "房间又脏又小，服务态度恶劣，再也不住了",
]
EN_POSITIVE = [
    "I love this phone, the battery life is excellent!",
    "The food was delicious and the staff were very friendly.",
    "One of the best films I have seen this year, brilliantly acted.",
]
EN_NEGATIVE = [
    "This is the worst movie I have ever seen.",
    "Terrible service, the food was cold and bland.",
    "It broke after two days, a complete waste of money.",
    "The plot was not good at all.",
]


@pytest.fixture(scope="module")
def analyzer() -> SentimentAnalyzer:
    return SentimentAnalyzer.load()


def _labels(analyzer: SentimentAnalyzer, texts: list[str], language: str) -> list[str]:
    return [r.label for r in analyzer.analyze_batch(texts, [language] * len(texts))]


def test_obvious_chinese_reviews(analyzer: SentimentAnalyzer) -> None:
    assert _labels(analyzer, ZH_POSITIVE, "zh") == ["positive"] * len(ZH_POSITIVE)
    assert _labels(analyzer, ZH_NEGATIVE, "zh") == ["negative"] * len(ZH_NEGATIVE)


def test_weibo_emoticons_carry_their_polarity(analyzer: SentimentAnalyzer) -> None:
    # Bracketed Weibo emoticons are taught as short labelled texts (train_sentiment.py).
    texts = ["周末去爬山了[哈哈]", "周末去爬山了[泪]"]
    assert _labels(analyzer, texts, "zh") == ["positive", "negative"]


def test_obvious_english_reviews(analyzer: SentimentAnalyzer) -> None:
    assert _labels(analyzer, EN_POSITIVE, "en") == ["positive"] * len(EN_POSITIVE)
    assert _labels(analyzer, EN_NEGATIVE, "en") == ["negative"] * len(EN_NEGATIVE)


def test_scores_are_a_distribution_and_score_is_the_labels(analyzer: SentimentAnalyzer) -> None:
    texts = [*ZH_POSITIVE, *ZH_NEGATIVE, *EN_POSITIVE, *EN_NEGATIVE, "", "12345"]
    languages = ["zh"] * 6 + ["en"] * 7 + ["other", "other"]
    for result in analyzer.analyze_batch(texts, languages):
        assert isinstance(result, Sentiment)
        scores = result.scores.model_dump()
        assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-9)
        assert result.score == scores[result.label]
        assert result.score == max(scores.values())


def test_batch_equals_one_at_a_time(analyzer: SentimentAnalyzer) -> None:
    texts = [*ZH_POSITIVE, *EN_NEGATIVE, "混合 mixed 文本 good", "", "很好" * 1500]
    languages = ["zh"] * 3 + ["en"] * 4 + ["mixed", "other", "zh"]
    batch = analyzer.analyze_batch(texts, languages)
    single = [
        analyzer.analyze_batch([t], [lang])[0] for t, lang in zip(texts, languages, strict=True)
    ]
    assert batch == single


def test_version_is_derived_from_the_weights_and_stable(analyzer: SentimentAnalyzer) -> None:
    again = SentimentAnalyzer.load()
    assert analyzer.name == "sentiment"
    assert analyzer.version == again.version
    assert analyzer.version.startswith("linear-")
    assert len(analyzer.version) == len("linear-") + 8


def test_text_without_signal_is_neutral_with_balanced_polarity(
    analyzer: SentimentAnalyzer,
) -> None:
    for text, language in (("", "zh"), ("", "en"), ("12345 ---", "other"), ("????", "other")):
        result = analyzer.analyze_batch([text], [language])[0]
        assert result.label == "neutral", (text, language, result)
        assert abs(result.scores.positive - result.scores.negative) < 0.15


def test_other_language_uses_the_model_its_script_fits(analyzer: SentimentAnalyzer) -> None:
    text = ZH_NEGATIVE[0]
    assert analyzer.analyze_batch([text], ["other"]) == analyzer.analyze_batch([text], ["zh"])
    en = EN_POSITIVE[0]
    assert analyzer.analyze_batch([en], ["other"]) == analyzer.analyze_batch([en], ["en"])


def test_mismatched_languages_are_rejected(analyzer: SentimentAnalyzer) -> None:
    with pytest.raises(ValueError):
        analyzer.analyze_batch(["a", "b"], ["en"])


def test_neutral_rule_keeps_polarity_order() -> None:
    rule = NeutralRule()
    positive, negative, neutral = rule.three_way(0.5)
    assert neutral > positive == negative
    positive, negative, neutral = rule.three_way(0.55)
    assert neutral > positive > negative
    positive, negative, neutral = rule.three_way(0.02)
    assert negative > 0.9 and neutral < 0.01
    assert math.isclose(positive + negative + neutral, 1.0)


def test_held_out_accuracy_stays_above_floor(analyzer: SentimentAnalyzer) -> None:
    from evaluation.sentiment import evaluate
    from evaluation.sentiment_splits import data_dir

    root: Path = data_dir()
    if not (root / "sentiment_zh").is_dir() or not (root / "sentiment_en").is_dir():
        pytest.skip(f"labelled sentiment data not found under {root} (set CONTENTSTREAM_DATA_DIR)")
    rows = {(r["dataset"], r["metric"]): r["value"] for r in evaluate(root, analyzer)}
    assert rows[("zh mean of 5 held-out sets", "accuracy")] >= 0.87
    assert rows[("uci_amazon (held-out)", "accuracy")] >= 0.80
    assert rows[("zh held-out (all sets)", "ece")] <= 0.05


def test_chinese_model_is_stacked_with_its_lexicon(analyzer: SentimentAnalyzer) -> None:
    zh = analyzer.zh
    assert zh.lexicon is not None and zh.stack is not None and zh.stack.shape == (5,)
    # Posts the review-trained n-grams misread: the lexicon's rules read them as a reader does.
    texts = ["我们队终于赢了，太激动了！", "这家店的蛋糕好吃得不得了！", "质量一般，性价比不算高。"]
    labels = [s.label for s in analyzer.analyze_batch(texts, ["zh"] * 3)]
    assert labels[0] == "positive" and labels[1] == "positive"
    assert labels[2] != "positive"


def test_chinese_stack_needs_both_parts() -> None:
    model_file = (
        Path(__file__).resolve().parents[2] / "analyzers/models/sentiment/zh_char_ngram.npz"
    )
    plain = ChineseCharNgramModel.load(model_file)  # no lexicon given: the stack is not used
    assert plain.stack is None and plain.lexicon is None
    with pytest.raises(ValueError, match="both"):
        ChineseCharNgramModel(
            coef=plain.coef,
            idf=plain.idf,
            intercept=plain.intercept,
            temperature=plain.temperature,
            max_order=plain.max_order,
            bits=plain.bits,
            lexicon=ChineseLexicon({"好": 1.0}),
        )
