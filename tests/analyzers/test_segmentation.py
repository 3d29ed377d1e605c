import itertools

import rjieba

from analyzers.segmentation import _tag, clear_cache, segment, segment_with_offsets, tag, tag_head


def test_segment_concatenates_back_to_the_text() -> None:
    text = "我们在北京大学研究卷积神经网络, and deep learning 2.5版本"
    words = segment(text)
    assert "".join(words) == text
    assert "北京大学" in words


def test_offsets_index_the_text() -> None:
    text = "今天天气很好，我们去公园。"
    tokens = segment_with_offsets(text)
    assert tokens[0][1] == 0 and tokens[-1][2] == len(text)
    for word, start, end in tokens:
        assert text[start:end] == word
    for (_, _, end), (_, start, _) in itertools.pairwise(tokens):
        assert end == start


def test_tags_come_from_the_dictionary() -> None:
    tags = dict(tag("我们研究神经网络，Python很好"))
    assert tags["神经网络"].startswith("n")
    assert tags["，"] == "x"
    assert tags["Python"] == "eng"


def test_results_are_cached_but_not_shared_mutably() -> None:
    clear_cache()
    first = segment("缓存测试文本")
    first.append("mutated")
    assert segment("缓存测试文本") == ["缓存", "测试", "文本"]
    assert tag("缓存测试文本") is tag("缓存测试文本")


def test_empty_text() -> None:
    assert segment("") == []
    assert segment_with_offsets("") == []


def _long_text() -> str:
    sentence = "卷积神经网络在图像分类中表现出色，研究人员在北京大学发布了新版本2.5。"
    return (sentence + "Deep learning models are strong.\n") * 40


def test_long_texts_are_tagged_in_pieces_with_identical_tags() -> None:
    text = _long_text()
    assert len(text) > 2000
    clear_cache()
    assert list(tag(text)) == rjieba.tag(text)


def test_tag_head_equals_tagging_the_head() -> None:
    text = _long_text()
    for chars in (5, 300, 800, 1234, len(text) + 10):
        clear_cache()
        assert list(tag_head(text, chars)) == rjieba.tag(text[:chars])


def test_tag_head_fills_the_cache_for_the_whole_text() -> None:
    text = _long_text()
    clear_cache()
    tag_head(text, 800)
    hits = _tag.cache_info().hits
    tag(text)
    # Every whole piece of the head is reused by the full tagging.
    assert _tag.cache_info().hits - hits >= 4
