import itertools

from analyzers.segmentation import clear_cache, segment, segment_with_offsets, tag


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
