import math
from pathlib import Path

import pytest

from analyzers import keywords as kw
from analyzers.keywords import KeywordExtractor
from evaluation.data import default_data_dir, read_jsonl, split_rows
from evaluation.keywords import f1_at_k, mean_f1

ABSTRACT = (
    "卷积神经网络是深度学习的代表算法之一。本文提出一种基于卷积神经网络的图像分类方法,"
    "利用深度学习提取图像特征.实验结果表明,该卷积神经网络方法的图像分类准确率明显提高. "
    "基于卷积神经网络的图像分类方法研究"
)


def test_returns_top_k_sorted_by_weight() -> None:
    extractor = KeywordExtractor(top_k=5)
    (keywords,) = extractor.analyze_batch([ABSTRACT], ["zh"])
    assert 0 < len(keywords) <= 5
    weights = [k.weight for k in keywords]
    assert weights == sorted(weights, reverse=True)
    assert len({k.text for k in keywords}) == len(keywords)


def test_merges_adjacent_segments_into_terms() -> None:
    (keywords,) = KeywordExtractor(top_k=5).analyze_batch([ABSTRACT], ["zh"])
    texts = [k.text for k in keywords]
    # rjieba cuts 卷积|神经网络 and 图像|分类: the candidates join them back.
    assert "卷积神经网络" in texts
    assert "图像分类" in texts


def test_filters_function_words_digits_and_punctuation() -> None:
    (keywords,) = KeywordExtractor(top_k=20).analyze_batch([ABSTRACT + " 2019年,123"], ["zh"])
    for k in keywords:
        assert len(k.text) >= 2
        assert not k.text.isdigit()
        assert k.text not in {"的", "本文", "提出", "结果表明", "，", ","}
        assert not any(ch in k.text for ch in "，,。.")


@pytest.mark.parametrize("method", kw.METHODS)
def test_every_method_finds_the_main_term(method: kw.Method) -> None:
    extractor = KeywordExtractor(top_k=10, method=method)
    (keywords,) = extractor.analyze_batch([ABSTRACT], ["zh"])
    assert any("神经网络" in k.text for k in keywords)
    assert extractor.version.endswith(method)


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError):
        KeywordExtractor(method="magic")  # type: ignore[arg-type]


def test_english_phrases_fold_plurals_and_drop_stop_words() -> None:
    text = (
        "Neural networks learn representations. Convolutional neural networks are used "
        "for image classification, and image classification benchmarks show that the "
        "convolutional neural network is strong."
    )
    (keywords,) = KeywordExtractor(top_k=5).analyze_batch([text], ["en"])
    texts = [k.text for k in keywords]
    assert "convolutional neural networks" in texts or "convolutional neural network" in texts
    assert "image classification" in texts
    assert not any(t in {"the", "are", "for", "and"} for t in texts)
    assert keywords[0].weight == 1.0


def test_empty_and_punctuation_only_texts() -> None:
    assert KeywordExtractor().analyze_batch(["", "，。！？", "   "], ["zh", "zh", "en"]) == [
        [],
        [],
        [],
    ]


def test_batch_keeps_order() -> None:
    texts = ["故宫博物院的文物很震撼", "The hotel breakfast was excellent"]
    result = KeywordExtractor(top_k=3).analyze_batch(texts, ["zh", "en"])
    assert any("故宫" in k.text for k in result[0])
    assert any("breakfast" in k.text for k in result[1])


def test_fast_ranker_equals_the_trained_linear_model() -> None:
    res = kw.load_resources()
    if res.ranker is None:
        pytest.skip("no keyword_ranker.json: run scripts/build_keyword_resources.py")
    fast = kw.FastRanker(res.ranker)
    found = kw.zh_candidates(ABSTRACT, res)
    first, last = kw._first_and_last_sentence(ABSTRACT)
    for phrase, cand in found.candidates.items():
        vector = kw.feature_vector(phrase, cand, found, first, last, res)
        slow = res.ranker.bias + math.fsum(
            w * f for w, f in zip(res.ranker.weights, vector, strict=False)
        )
        fast_score = fast.score(
            phrase, cand, found.text, 1 / max(found.n_tokens, 1), first, last, res.idf
        )
        assert fast_score == pytest.approx(slow, abs=1e-9)


def test_ranker_weights_name_their_interactions() -> None:
    names = [*kw.FEATURE_NAMES, "log_tf*clean_left", "chars*chars"]
    payload = {"features": names, "weights": [0.0] * len(names), "bias": 0.0, "edges": []}
    weights = kw.ranker_weights(payload)
    assert weights is not None
    index = kw.NUMERIC_FEATURES.index
    assert weights.interactions == (
        (index("log_tf"), index("clean_left")),
        (index("chars"), index("chars")),
    )
    # A product of an unknown or a one-hot feature means the file is stale.
    for stale in ("log_tf*no_such_feature", "first_tag_0*chars", "log_tf"):
        assert kw.ranker_weights({**payload, "features": [*kw.FEATURE_NAMES, stale]}) is None
    assert kw.ranker_weights({**payload, "features": names[1:]}) is None
    assert kw.ranker_weights({**payload, "weights": [0.0] * (len(names) - 1)}) is None


def test_f1_at_k() -> None:
    assert f1_at_k(["a", "b", "c", "d", "e"], ["a", "b"]) == pytest.approx(2 * 0.4 * 1 / 1.4)
    assert f1_at_k(["x"], ["a"]) == 0.0
    assert f1_at_k([], ["a"]) == 0.0
    assert f1_at_k(["a", "b", "c", "d", "e", "f"], ["f"]) == 0.0  # only the first five count


def _csl_rows() -> list[dict[str, object]]:
    path = default_data_dir() / "keywords" / "csl_dev.jsonl"
    if not path.is_file():
        pytest.skip(f"labelled data not found at {path} (set CONTENTSTREAM_DATA_DIR)")
    return list(read_jsonl(Path(path)))


def test_quality_on_held_out_csl_keywords() -> None:
    _, held = split_rows(_csl_rows())
    assert mean_f1(KeywordExtractor(top_k=5), held) >= 0.25


def test_inlined_scoring_equals_the_fast_ranker() -> None:
    res = kw.load_resources()
    if res.ranker is None:
        pytest.skip("no keyword_ranker.json: run scripts/build_keyword_resources.py")
    fast = kw.FastRanker(res.ranker)
    found = kw.zh_candidates(ABSTRACT, res)
    first, last = kw._first_and_last_sentence(ABSTRACT)
    scored = fast.score_candidates(
        found.candidates.items(), ABSTRACT, found.n_tokens, first, last, res.idf
    )
    assert [p for p, _ in scored] == list(found.candidates)
    for phrase, score in scored:
        expected = fast.score(
            phrase,
            found.candidates[phrase],
            ABSTRACT,
            1 / max(found.n_tokens, 1),
            first,
            last,
            res.idf,
        )
        assert score == pytest.approx(expected, abs=1e-12)


def test_candidates_count_repeats_and_keep_first_position() -> None:
    found = kw.zh_candidates(ABSTRACT, kw.load_resources())
    cand = found.candidates["卷积神经网络"]
    assert cand[kw.COUNT] == 4
    assert cand[kw.WORDS] == 2
    assert cand[kw.FIRST_TOKEN] == 0
    chunks = found.chunk_words()
    assert chunks[0][:2] == ["卷积", "神经网络"]
    assert all(w not in {"的", "，", ","} for chunk in chunks for w in chunk)


def test_long_text_candidates_come_from_the_head() -> None:
    tail_term = "量子退火算法"
    text = ABSTRACT * 10 + "。" + tail_term * 3
    assert len(text) > kw.CANDIDATE_WINDOW_CHARS
    found = kw.zh_candidates(text, kw.load_resources())
    assert "卷积神经网络" in found.candidates
    assert not any("退火" in p for p in found.candidates)


def test_extract_equals_analyze_batch() -> None:
    extractor = KeywordExtractor(top_k=5)
    texts = [ABSTRACT, "The hotel breakfast was excellent", ""]
    languages = ["zh", "en", "zh"]
    batch = extractor.analyze_batch(texts, languages)
    assert [extractor.extract(t, lang) for t, lang in zip(texts, languages, strict=True)] == batch
    assert all(0.0 < k.weight <= 1.0 for k in batch[0])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # aspect particle after the phrase: a predicate, not a term
        ("阿里巴巴集团今天在杭州发布了新一代人工智能模型。", "杭州发布"),
        ("清华大学的研究人员参与了评测。", "人员参与"),
        # a name and the verb or the number after it
        ("酒店离西湖步行十分钟。", "西湖步行"),
        ("李明回到成都开了一家咖啡馆。", "成都开"),
        # a number word leading a verb
        ("文物真的太震撼了，值得一去！", "一去"),
        # a number or measure word inside the phrase
        ("暴雨导致广州多条地铁线路停运。", "广州多条地铁"),
        # opinion words and potential complements
        ("房间隔音很差，晚上根本睡不着。", "睡不着"),
        ("这家餐厅价格实惠，强烈推荐！", "强烈推荐"),
    ],
)
def test_zh_candidates_are_terms_not_clause_fragments(text: str, fragment: str) -> None:
    found = kw.zh_candidates(text, kw.load_resources())
    assert fragment not in found.candidates
    (keywords,) = KeywordExtractor(top_k=20).analyze_batch([text], ["zh"])
    assert fragment not in {k.text for k in keywords}


def test_zh_terms_survive_the_context_rules() -> None:
    text = (
        "阿里巴巴集团今天在杭州发布了新一代人工智能模型，清华大学和浙江大学的研究人员参与了评测。"
    )
    found = kw.zh_candidates(text, kw.load_resources())
    for term in ("人工智能", "人工智能模型", "清华大学", "浙江大学", "研究人员", "杭州"):
        assert term in found.candidates, term


@pytest.mark.parametrize(
    ("text", "wanted", "unwanted"),
    [
        (
            "Terrible experience. The package arrived broken, customer support never "
            "answered, and the refund took six weeks.",
            {"customer support", "package", "refund"},
            {"refund took six", "customer support never", "package arrived broken", "weeks"},
        ),
        (
            "Microsoft announced on Tuesday that it will open a new research lab in London. "
            "Satya Nadella said the lab will focus on climate modelling.",
            {"research lab", "London", "Satya Nadella", "climate modelling"},
            {"microsoft announced", "tuesday", "new research lab"},
        ),
        (
            "The hotel room was spotless and the location near Central Park could not be better.",
            {"hotel room", "Central Park", "location"},
            {"location near central", "spotless", "better"},
        ),
    ],
)
def test_english_keyphrases_are_noun_phrases(
    text: str, wanted: set[str], unwanted: set[str]
) -> None:
    (keywords,) = KeywordExtractor(top_k=10).analyze_batch([text], ["en"])
    texts = {k.text for k in keywords}
    assert wanted <= texts, texts
    assert not unwanted & {t.lower() for t in texts}, texts


def test_english_chunker_classes() -> None:
    chunks = kw.en_noun_phrases("Just finished reading the new novel; the ending is worth it.")
    assert [[token for token, _ in chunk] for chunk in chunks] == [["novel"], ["ending"]]


def test_capitalised_latin_names_in_chinese_text_stay_whole() -> None:
    text = "今天试用了新的 iPhone，Face ID 很快，MacBook Pro 的屏幕非常好，但是价格太贵了。"
    (keywords,) = KeywordExtractor(top_k=10).analyze_batch([text], ["zh"])
    texts = {k.text for k in keywords}
    assert {"Face ID", "MacBook Pro"} <= texts
    assert not texts & {"Face", "ID", "Pro"}


def test_english_lone_head_word_of_a_higher_phrase_is_left_out() -> None:
    text = (
        "Microsoft announced on Tuesday that it will open a new research lab in London. "
        "Satya Nadella said the lab will focus on climate modelling."
    )
    (keywords,) = KeywordExtractor(top_k=6).analyze_batch([text], ["en"])
    texts = [k.text for k in keywords]
    assert "research lab" in texts and "lab" not in texts
