from pathlib import Path

import pytest

from analyzers.summary import (
    FEATURES,
    VERSION,
    ClauseTrim,
    Summarizer,
    _units,
    load_ranker,
    load_trim,
    unit_features,
)
from evaluation.data import default_data_dir, read_jsonl, split_rows
from evaluation.rouge import lcs_length, rouge_l, rouge_n, rouge_scores
from evaluation.summary import mean_rouge

NEWS = (
    "国家统计局今天发布数据，今年前三季度国内生产总值同比增长百分之五。"
    "其中第三季度增长百分之四点九，消费对经济增长的贡献率继续提高。"
    "专家认为，国内生产总值保持增长，全年目标有望实现。"
    "另外，天气转凉，市民出行请注意保暖。"
)


def test_short_text_is_its_own_summary() -> None:
    assert Summarizer().analyze_batch(["今天天气很好。"], ["zh"]) == ["今天天气很好。"]


def test_summary_is_bounded_and_extractive() -> None:
    summarizer = Summarizer(max_chars=60)
    (summary,) = summarizer.analyze_batch([NEWS], ["zh"])
    assert 0 < len(summary) <= 60
    # Every unit of the summary is a piece of the text.
    for piece in summary.replace("。", "，").split("，"):
        assert piece in NEWS
    assert "保暖" not in summary  # the off-topic sentence is not chosen


def test_units_come_back_in_text_order() -> None:
    text = "第一部分讲增长，" + "无关的话题说了很多很多很多，" * 5 + "最后增长目标实现增长。"
    (summary,) = Summarizer(max_chars=40, min_target_chars=40).analyze_batch([text], ["zh"])
    positions = [text.index(p) for p in summary.split("，") if p]
    assert positions == sorted(positions)


@pytest.mark.parametrize(
    ("text", "starts_with"),
    [
        # A quote opened before the chosen clause and closed after it, and a list bullet.
        (
            '"•鸿雁传书，电子书的阅读平台，涵盖等多家书籍；•鸿雁传书，在线阅读，离线阅读，'
            '多种阅读方式，解决流量烦恼；•鸿雁传书，用户的阅读选择，从此爱上阅读。"',
            "鸿雁传书",
        ),
        ("●全球超10亿人都在使用手机拍照，让你自拍更自然，图像处理超强的照片编辑功能。", "全球"),
        # Quotes the summary closes itself stay.
        ("“离散”是全球化时代的重要理论，本文梳理了它的来源、演变和在社会学中的用法。", "“离散”"),
        ('"诵读"概念从古至今经历了一个逐步演变的过程，本文考察了它在各个时期的含义。', '"诵读"'),
    ],
)
def test_summary_drops_a_leading_bullet_or_unclosed_quote(text: str, starts_with: str) -> None:
    # The first clause is chosen (position only), whatever the shipped weights prefer.
    summarizer = Summarizer(max_chars=30, min_target_chars=10, max_units=1, weights=_only("head"))
    (summary,) = summarizer.analyze_batch([text], ["zh"])
    assert summary.startswith(starts_with)
    assert summary.strip('"“”') in text


def test_overlong_first_sentence_is_cut_at_a_boundary() -> None:
    text = "这是一个非常长的句子" * 30
    (summary,) = Summarizer(max_chars=50).analyze_batch([text], ["zh"])
    assert len(summary) <= 50
    assert text.startswith(summary)
    assert summary.endswith("句子")  # a word boundary, not half a word


def test_english_sentences() -> None:
    text = (
        "The city council approved the new budget on Monday. The budget raises spending on "
        "schools and roads. Critics said the budget ignores housing. Dr. Lee, a local "
        "economist, called the vote a turning point for the city budget. " * 3
    )
    (summary,) = Summarizer(max_chars=120).analyze_batch([text], ["en"])
    assert 0 < len(summary) <= 120
    assert summary.endswith(".")
    assert "budget" in summary


def test_target_chars_grows_with_the_text_up_to_max_chars() -> None:
    summarizer = Summarizer(max_chars=120, min_target_chars=30)
    assert summarizer.target_chars("字" * 100) == 30
    assert summarizer.target_chars("字" * 800) == 80
    assert summarizer.target_chars("字" * 5000) == 120


def test_empty_text() -> None:
    assert Summarizer().analyze_batch(["", "   "], ["zh", "en"]) == ["", ""]


def test_rouge() -> None:
    assert lcs_length("abcde", "ace") == 3
    assert rouge_l("我爱北京", "我爱北京") == 1.0
    assert rouge_l("", "我爱北京") == 0.0
    # LCS 2 (我京): precision 2/3, recall 2/4.
    assert rouge_l("我去京", "我爱北京") == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert rouge_n("我爱北京", "我爱上海", 1) == pytest.approx(0.5)
    assert rouge_n("我爱北京", "我爱上海", 2) == pytest.approx(1 / 3)
    assert rouge_scores("a b", "ab")["rouge-2"] == 1.0  # whitespace ignored


@pytest.mark.parametrize(
    ("dataset", "floor"),
    [("summarization/csl_title_dev.jsonl", 0.25), ("summarization/lcsts_dev.jsonl", 0.15)],
)
def test_quality_on_held_out_data(dataset: str, floor: float) -> None:
    path = default_data_dir() / dataset
    if not path.is_file():
        pytest.skip(f"labelled data not found at {path} (set CONTENTSTREAM_DATA_DIR)")
    _, held = split_rows(list(read_jsonl(Path(path))))
    assert mean_rouge(Summarizer(), held)["rouge-l"] >= floor


def test_shipped_ranker_is_loaded_and_versioned() -> None:
    model = load_ranker()
    assert model["features"] == list(FEATURES)
    summarizer = Summarizer()
    assert summarizer.version == VERSION
    assert VERSION.startswith("extractive-6-")  # the ranker and the clause trim
    assert Summarizer(ranker=False).version == "extractive-6-heuristic"


def _only(feature: str) -> list[float]:
    """Weights that score by one feature alone."""
    return [1.0 if name == feature else 0.0 for name in FEATURES]


def _dot(rows: list[list[float]], weights: list[float]) -> list[float]:
    return [sum(f * w for f, w in zip(row, weights, strict=True)) for row in rows]


def test_ranker_scores_are_the_feature_rows_times_the_weights() -> None:
    weights = [0.3, -0.2, 0.5, 0.7, -0.4, 0.25, -0.35, 0.45, -0.15, 0.6, -0.8, 0.2]
    assert len(weights) == len(FEATURES)
    with_digits = (
        "5月29日，最高法发布3个典型案例，指导法院加大惩治力度："
        "一、小学老师性侵女童被执行死刑；二、继母虐待女童被判重刑。"
    )
    no_digits = "国家统计局今天发布数据，消费贡献率继续提高，专家认为全年目标有望实现。"
    cues = "本文针对“离散”模型，提出了一种分析方法。研究表明，该方法有效，可。"
    for text in (with_digits, no_digits, cues):
        units = _units(text, "zh")
        expected = _dot(unit_features(text, units), weights)
        assert Summarizer._ranked(text, units, weights) == pytest.approx(expected)


def test_ranker_picks_by_its_weights_and_keeps_text_order() -> None:
    text = "开头一句话，" + "这一句比较长一些而且包含很多字，" + "结尾。" + "补充" * 20
    # Only "head" counts: the first clause wins.
    (lead,) = Summarizer(max_units=1, weights=_only("head")).analyze_batch([text], ["zh"])
    assert lead == "开头一句话"
    # Only length counts: the longest clause wins.
    (longest,) = Summarizer(max_units=1, weights=_only("chars")).analyze_batch([text], ["zh"])
    assert longest == "补充" * 20
    (two,) = Summarizer(max_units=2, weights=_only("head")).analyze_batch([text], ["zh"])
    assert two == "开头一句话，这一句比较长一些而且包含很多字"


def test_ranker_weights_must_match_the_features() -> None:
    with pytest.raises(ValueError, match="weights"):
        Summarizer(weights=[1.0, 2.0])


def test_ranker_file_for_other_features_falls_back(tmp_path: Path) -> None:
    stale = tmp_path / "clause_ranker.json"
    stale.write_text('{"features": ["old"], "weights": [1.0], "max_units": 1}')
    assert load_ranker(stale) == {}
    assert load_ranker(tmp_path / "absent.json") == {}


def test_english_keeps_the_heuristic() -> None:
    text = (
        "The city council approved the new budget on Monday. The budget raises spending on "
        "schools and roads. Critics said the budget ignores housing. " * 4
    )
    assert Summarizer().analyze_batch([text], ["en"]) == Summarizer(ranker=False).analyze_batch(
        [text], ["en"]
    )


def _trim(max_lead: int = 4, max_tail: int = 3, min_chars: int = 4) -> ClauseTrim:
    return ClauseTrim(
        frozenset({"为了", "研究", "提出", "了", "一种"}),
        frozenset({"问题"}),
        max_lead=max_lead,
        max_tail=max_tail,
        min_chars=min_chars,
    )


def test_clause_trim_walks_in_from_both_ends() -> None:
    words = ["为了", "研究", "网络", "容错", "路由", "问题"]
    tags = ["p", "vn", "n", "a", "n", "n"]
    assert _trim().span(words, tags) == (2, 5)
    assert _trim(max_lead=1, max_tail=0).span(words, tags) == (1, 6)
    # Never below min_chars: without 研究 the clause would be 8 characters.
    assert _trim(min_chars=9).span(words, tags) == (1, 6)
    assert _trim(min_chars=7).span(words, tags) == (2, 6)
    assert _trim().apply("为了研究网络容错路由问题") == "网络容错路由"
    assert _trim().apply("网络容错路由") == "网络容错路由"


def test_clause_trim_never_leaves_a_clause_opening_with_an_adverb_or_particle() -> None:
    # 提出 了 一种 are all dropped; had the walk stopped after 提出, 了 (a particle) would
    # open the clause, so it steps back instead.
    assert _trim().apply("提出了一种图像检索方法") == "图像检索方法"
    assert _trim(max_lead=1).apply("提出了一种图像检索方法") == "提出了一种图像检索方法"
    assert _trim().span(["研究", "无处不在"], ["vn", "l"]) == (0, 2)


def test_shipped_trim_cuts_the_purpose_cue_of_an_abstract() -> None:
    assert load_trim()["lead"]
    text = (
        "为了研究交换超立方体网络容错路由问题,引入了相邻结点集合类的概念,提出了相邻结点集的"
        "求解公式。对于满足任意子连通性条件的交换超立方体网络,给出了基于相邻结点集合类的自适应"
        "容错路由算法及算法的步长上界。仿真实验结果表明算法是有效的。"
    )
    (trimmed,) = Summarizer().analyze_batch([text], ["zh"])
    (whole,) = Summarizer(trim=False).analyze_batch([text], ["zh"])
    assert whole.startswith("为了研究")
    assert trimmed.startswith("交换超立方体网络容错路由")
    assert len(trimmed) < len(whole)
    # Each trimmed clause is still a piece of the text.
    for piece in trimmed.split(","):
        assert piece in text


def test_a_half_width_full_stop_before_chinese_ends_a_clause() -> None:
    text = "各级基层组织换届选举.这是为什么?海冰面积为北半球的1.13倍. U.S.政策"
    assert [u.strip() for u in _units(text, "zh")] == [
        "各级基层组织换届选举.",
        "这是为什么?",
        "海冰面积为北半球的1.13倍.",
        "U.S.政策",
    ]


def test_clause_trim_never_ends_a_clause_on_an_adverb_or_particle() -> None:
    trim = ClauseTrim(frozenset({"第"}), frozenset({"多", "了"}))
    # Dropping 多 would end the clause at 较 (an adverb): it stays.
    assert trim.span(["病例", "增加", "较", "多"], ["n", "v", "d", "m"]) == (0, 4)
    assert trim.span(["病例", "增加", "了"], ["n", "v", "ul"]) == (0, 2)
    # Dropping 第 would open the clause with a number: it stays.
    assert trim.span(["第", "二届", "活动"], ["m", "m", "vn"]) == (0, 3)


def test_clause_trim_leaves_no_punctuation_at_the_front() -> None:
    trim = ClauseTrim(frozenset({"1"}), frozenset())
    words, tags = ["1", "、", "陌陌", "上市"], ["m", "x", "nr", "v"]
    assert trim.span(words, tags) == (1, 4)
    assert trim.kept(words, tags) == "陌陌上市"
    # Nothing dropped: the clause is kept as it is.
    assert ClauseTrim(frozenset(), frozenset()).kept(["、", "陌陌"], ["x", "nr"]) == "、陌陌"


def test_a_clause_that_only_names_the_speaker_joins_what_follows() -> None:
    text = "国务院总理作政府工作报告。报告指出，要坚持稳中求进工作总基调。据了解，他说：明天出发。"
    assert _units(text, "zh") == [
        "国务院总理作政府工作报告。",
        "报告指出，要坚持稳中求进工作总基调。",
        "据了解，他说：明天出发。",
    ]
    # Never the whole summary of a news text on its own.
    news = (
        "新华社北京3月5日电 国务院总理在人民大会堂作政府工作报告，提出今年国内生产总值增长预期"
        "目标为5%左右。报告指出，要坚持稳中求进工作总基调，推动经济实现质的有效提升和量的合理增长。"
    )
    assert Summarizer().summarize(news, "zh").startswith("报告指出，要坚持")


def test_clause_trim_keeps_the_le_of_tai_le() -> None:
    trim = ClauseTrim(frozenset(), frozenset({"了"}))
    assert trim.span(["价格", "上涨", "了"], ["n", "v", "ul"]) == (0, 2)
    # 太…了 is one frame: 文物真的太震撼 would read clipped.
    words, tags = ["文物", "真的", "太", "震撼", "了"], ["n", "d", "d", "a", "ul"]
    assert trim.span(words, tags) == (0, 5)
