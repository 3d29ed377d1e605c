from pathlib import Path

import pytest

from analyzers.summary import Summarizer
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
