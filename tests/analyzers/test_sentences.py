from analyzers.sentences import sentence_spans, split_sentences


def test_chinese_terminators_and_closing_quotes() -> None:
    text = "今天天气很好。我们去公园吧！你说呢？“好的。”他说；然后走了……结束"
    assert split_sentences(text) == [
        "今天天气很好。",
        "我们去公园吧！",
        "你说呢？",
        "“好的。”",
        "他说；",
        "然后走了……",
        "结束",
    ]


def test_english_abbreviations_and_decimals_do_not_split() -> None:
    text = "Dr. Smith paid $3.50 for it. The U.S. Army agreed, e.g. on Monday. Then we left!"
    assert split_sentences(text) == [
        "Dr. Smith paid $3.50 for it.",
        "The U.S. Army agreed, e.g. on Monday.",
        "Then we left!",
    ]


def test_half_width_full_stop_between_han_characters_splits() -> None:
    text = "提出了新的方法.仿真结果表明,性能提高2.5倍."
    assert split_sentences(text) == ["提出了新的方法.", "仿真结果表明,性能提高2.5倍."]


def test_urls_lowercase_continuations_and_newlines() -> None:
    text = "see example.com for info. next to it.\n\nNew paragraph"
    assert split_sentences(text) == ["see example.com for info. next to it.", "New paragraph"]


def test_spans_point_into_the_text() -> None:
    text = "  第一句。 第二句！  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["第一句。", "第二句！"]


def test_empty_and_blank() -> None:
    assert split_sentences("") == []
    assert split_sentences("   \n ") == []
