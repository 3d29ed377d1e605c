"""Behaviour of the entity recognizer: offsets, types, obvious names, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzers.entities import (
    EXTRA_NAMES_FILE,
    ChineseEntityTagger,
    EntityRecognizer,
    OneCharNames,
    english_entities,
    read_extra_names,
)
from analyzers.ner_features import (
    ORG_CUES,
    CueTable,
    FeatureExtractor,
    Gazetteer,
    HashedWeights,
    _codes_of_words,
    batch_codepoints,
    batch_word_codes,
    codepoints,
    cue_distance,
    normalise,
    place_end,
    word_codes,
)
from analyzers.viterbi import RegionViterbi, tag_constraints
from schemas.results import Entity

TYPES = {"PER", "LOC", "ORG"}
MODEL_FILE = Path(__file__).resolve().parents[2] / "analyzers/models/entities/weights.npz"

TEXTS = [
    "习近平在北京会见了清华大学校长，国务院总理李克强出席。",
    "  \n 😀😀 上海市政府和阿里巴巴集团在杭州签署协议，马云表示欢迎。🎉",
    "",
    "今天天气很好。",
    "𠮷野家在广州开了新店，广东省商务厅的王小明参加了开业仪式。",
    "Apple和微软公司的代表在深圳会面。",
]


@pytest.fixture(scope="module")
def recognizer() -> EntityRecognizer:
    if not MODEL_FILE.exists():
        pytest.skip("the trained weights (analyzers/models/entities/weights.npz) are absent")
    return EntityRecognizer.load()


def _check_offsets(text: str, entities: list[Entity]) -> None:
    last_end = 0
    for ent in entities:
        assert text[ent.start : ent.end] == ent.text
        assert ent.text
        assert ent.type in TYPES
        assert ent.start >= last_end  # sorted, non-overlapping
        last_end = ent.end


def test_offsets_slice_to_entity_text(recognizer: EntityRecognizer) -> None:
    results = recognizer.analyze_batch(TEXTS, ["zh"] * len(TEXTS))
    assert len(results) == len(TEXTS)
    for text, entities in zip(TEXTS, results, strict=True):
        _check_offsets(text, entities)


def test_obvious_names_found(recognizer: EntityRecognizer) -> None:
    (found,) = recognizer.analyze_batch([TEXTS[0]], ["zh"])
    pairs = {(e.text, e.type) for e in found}
    assert ("习近平", "PER") in pairs
    assert ("北京", "LOC") in pairs
    assert ("清华大学", "ORG") in pairs
    assert ("国务院", "ORG") in pairs
    assert ("李克强", "PER") in pairs


def test_names_after_emoji_and_whitespace(recognizer: EntityRecognizer) -> None:
    text = TEXTS[1]
    (found,) = recognizer.analyze_batch([text], ["zh"])
    _check_offsets(text, found)
    texts = {e.text for e in found}
    assert "杭州" in texts
    assert "马云" in texts


def test_batch_equals_one_at_a_time(recognizer: EntityRecognizer) -> None:
    languages = ["zh", "zh", "zh", "zh", "mixed", "mixed"]
    batch = recognizer.analyze_batch(TEXTS, languages)
    pairs = zip(TEXTS, languages, strict=True)
    single = [recognizer.analyze_batch([t], [lang])[0] for t, lang in pairs]
    assert batch == single


def test_empty_and_plain_texts(recognizer: EntityRecognizer) -> None:
    assert recognizer.analyze_batch([], []) == []
    assert recognizer.analyze_batch([""], ["zh"]) == [[]]
    assert recognizer.analyze_batch(["今天天气很好。"], ["zh"]) == [[]]
    assert recognizer.analyze_batch(["Привет, мир"], ["other"]) == [[]]


def test_long_text_split_into_pieces_keeps_offsets(recognizer: EntityRecognizer) -> None:
    sentence = "国务院总理李克强在北京会见了来访的法国总统。"
    text = "  " + sentence * 1200  # longer than one featurisation chunk
    (found,) = recognizer.analyze_batch([text], ["zh"])
    _check_offsets(text, found)
    assert sum(1 for e in found if e.text == "李克强") >= 1100


def test_version_names_the_weights(recognizer: EntityRecognizer) -> None:
    assert recognizer.name == "entities"
    assert recognizer.version.startswith("crf-")
    assert recognizer.version == EntityRecognizer.load().version


def test_english_heuristic() -> None:
    text = "Barack Obama met officials of the Ministry of Commerce in Beijing on Monday."
    spans = {(text[s:e], kind) for s, e, kind in english_entities(text)}
    assert ("Barack Obama", "PER") in spans
    assert ("Ministry of Commerce", "ORG") in spans
    assert ("Beijing", "LOC") in spans
    assert not any(t == "Monday" for t, _ in spans)


def test_english_goes_through_heuristic(recognizer: EntityRecognizer) -> None:
    text = "  Angela Merkel visited Microsoft in Seattle."
    (found,) = recognizer.analyze_batch([text], ["en"])
    _check_offsets(text, found)
    assert ("Angela Merkel", "PER") in {(e.text, e.type) for e in found}


def test_features_are_deterministic_and_local() -> None:
    gazetteer = Gazetteer.build([("北京", 1), ("李克强", 0)], bits=10)
    extractor = FeatureExtractor(gazetteer)
    codes, starts = batch_codepoints(["李克强在北京", "北京"])
    keys = extractor.keys(codes)
    alone, _ = batch_codepoints(["北京"])
    # The second text's features do not depend on its neighbour in the batch.
    s = int(starts[1])
    np.testing.assert_array_equal(keys[s : s + 2], extractor.keys(alone)[2:4])
    match = gazetteer.match_codes(codes)
    assert match[int(starts[0]) : int(starts[0]) + 3, 0].tolist() == [1, 2, 3]


def test_hashed_weights_ignore_unknown_keys() -> None:
    weights = HashedWeights.build({12345: np.array([1.0, 2.0], dtype=np.float32)}, 2, bits=8)
    out = weights.emissions([np.array([12345, 999], dtype=np.uint64)])
    np.testing.assert_allclose(out, [[1.0, 2.0], [0.0, 0.0]])


def test_viterbi_respects_bio_constraints() -> None:
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    trans, first, _ = tag_constraints(tags)
    assert first[tags.index("I-PER")] < -1e8
    assert trans[tags.index("O"), tags.index("I-LOC")] < -1e8
    assert trans[tags.index("B-PER"), tags.index("I-PER")] == 0.0
    # Emissions prefer I-LOC after B-PER; the constraint forbids it.
    em = np.array([[0, 5, 0, 0, 0], [0, 0, 1, 0, 3], [9, 0, 0, 0, 0]], dtype=np.float32)
    decoder = RegionViterbi(tags, np.zeros((5, 5), dtype=np.float32), margin=100.0)
    out = decoder.decode(em, np.array([False, False, False]))
    assert [tags[i] for i in out] == ["B-PER", "I-PER", "O"]


def test_viterbi_wide_step_matches_argmax() -> None:
    rng = np.random.default_rng(7)
    trans = rng.normal(size=(7, 7)).astype(np.float32)
    for k in (3, 200):  # both forms of the step
        score = rng.normal(size=(k, 7)).astype(np.float32)
        score[:, 2] = score[:, 1]  # ties: the first best previous tag wins
        best, best_prev = RegionViterbi._step(score, trans)
        cand = score[:, :, None] + trans[None, :, :]
        np.testing.assert_array_equal(best_prev, cand.argmax(axis=1))
        np.testing.assert_allclose(best, cand.max(axis=1))


def test_batch_word_codes_equal_per_text_codes() -> None:
    tagged = [(("北京", "ns"), ("的", "uj"), ("天安门", "ns")), (), (("好", "a"),)]
    got = batch_word_codes(tagged)
    pad = [0, 0]
    want = np.concatenate([pad, word_codes(tagged[0]), pad, pad, word_codes(tagged[2]), pad])
    np.testing.assert_array_equal(got, want)
    assert (
        word_codes(tagged[0]).tolist()
        == _codes_of_words(np.array([2, 1, 3]), [2, 12, 2]).tolist()
        == [8, 10, 51, 8, 9, 10]
    )


def test_cue_distance_points_at_name_final_words() -> None:
    text = "中国人民银行和委员会"
    dist = cue_distance(normalise(codepoints(text)), CueTable.of([]))
    assert dist.tolist() == [0] * len(text)
    assert "银行" in ORG_CUES
    dist = cue_distance(normalise(codepoints(text)), CueTable.of(ORG_CUES))
    # "银行" starts at 4, "委员会" (and "委", "会") at 7: distance to the next cue start.
    assert dist.tolist()[:7] == [4, 3, 2, 1, 3, 2, 1]


def test_heldout_f1_above_floor() -> None:
    from evaluation.entities_splits import data_dir

    if not (data_dir() / "ner" / "peoples_daily_dev.jsonl").exists():
        pytest.skip("shared NER data (CONTENTSTREAM_DATA_DIR / ../shared/data) is absent")
    if not MODEL_FILE.exists():
        pytest.skip("the trained weights are absent")
    from evaluation.entities import model_spans, prf
    from evaluation.entities_splits import sentences

    predict = model_spans()
    for source, floor in (("peoples_daily", 0.76), ("msra", 0.74)):
        gold = sentences(source, {"test"})
        scores = prf(gold, predict([s.text for s in gold]))
        assert scores["f1_micro"] >= floor, (source, scores)


def test_place_is_not_glued_to_the_words_after_it(recognizer: EntityRecognizer) -> None:
    text = "酒店位置很好，离西湖步行十分钟。"
    (found,) = recognizer.analyze_batch([text], ["zh"])
    assert [(e.text, e.type) for e in found] == [("西湖", "LOC")]


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("离西湖步行十分钟", (1, 5), 3),  # ns word + ordinary noun: cut after the place
        ("杭州市政府发布通知", (0, 5), None),  # ends in a name-final cue
        ("上海浦东新区", (0, 6), None),  # continues with another place word
        ("西湖", (0, 2), None),  # too short to hold a glued word
    ],
)
def test_word_offsets_unglue_rule(text: str, span: tuple[int, int], expected: int | None) -> None:
    from analyzers import segmentation
    from analyzers.ner_features import WordOffsets

    offsets = WordOffsets(segmentation.tag(text))
    assert offsets.unglued_end(text, *span) == expected


def test_person_does_not_swallow_the_next_word(recognizer: EntityRecognizer) -> None:
    text = "张三在北京大学读书，李华去了上海。"
    (found,) = recognizer.analyze_batch([text], ["zh"])
    assert all(e.text[-1] not in "在去" for e in found if e.type == "PER")


def test_extra_names_parse_and_reject_bad_lines() -> None:
    assert read_extra_names("# comment\n\n腾讯\tORG\n西湖\tLOC\n") == [("腾讯", 2), ("西湖", 1)]
    with pytest.raises(ValueError, match="line 2"):
        read_extra_names("腾讯\tORG\n京东 ORG\n")
    with pytest.raises(ValueError, match="line 1"):
        read_extra_names("腾讯\tCOMPANY\n")


def test_one_char_names_are_added_where_listed_and_free() -> None:
    listed = ("中美\t0\tLOC", "中美\t1\tLOC", "美日\t1\tLOC", "访华\t1\tLOC")
    names = OneCharNames.parse("# comment\n" + "\n".join(listed))
    # Overlapping bigrams are all seen (中美日: 中, 美, 日), and the result stays in order.
    assert names.add_to("中美日三方会谈", []) == [(0, 1, "LOC"), (1, 2, "LOC"), (2, 3, "LOC")]
    assert names.add_to("总统访华", [(0, 2, "PER")]) == [(0, 2, "PER"), (3, 4, "LOC")]
    # Never inside or beside a name the tagger found: 美日 in 美日本 is part of 日本.
    assert names.add_to("赴美日本学者", [(2, 4, "LOC")]) == [(2, 4, "LOC")]
    assert names.add_to("中心城市", []) == []


def test_place_end_drops_a_final_area_word() -> None:
    assert place_end("中东地区局势", 0, 4) == 2
    assert place_end("他在汉水流域", 2, 6) == 4
    # Two characters must remain, and only a final area word goes.
    assert place_end("山区", 0, 2) == 2 and place_end("西部地", 0, 3) == 3
    assert place_end("地区办公室", 0, 5) == 5


def test_places_lose_the_area_word_after_them(recognizer: EntityRecognizer) -> None:
    # The CRF alone gives 汉水流域/LOC here.
    (found,) = recognizer.analyze_batch(["汉水流域普降大雨。"], ["zh"])
    assert [(e.text, e.type) for e in found] == [("汉水", "LOC")]


def test_one_char_names_reject_bad_lines() -> None:
    for bad in ("中美\t2\tLOC", "中美国\t0\tLOC", "中美\t0\tPLACE", "中美 0 LOC"):
        with pytest.raises(ValueError, match="line 2"):
            OneCharNames.parse("访华\t1\tLOC\n" + bad)


def test_shipped_one_char_names_find_abbreviated_places(recognizer: EntityRecognizer) -> None:
    assert recognizer.tagger.one_char_names is not None
    (found,) = recognizer.analyze_batch(["中美两国元首今天通了电话。"], ["zh"])
    assert {(e.text, e.type, e.start) for e in found} >= {("中", "LOC", 0), ("美", "LOC", 1)}


def test_curated_names_replace_dictionary_kinds() -> None:
    gazetteer = Gazetteer.build([("京东", 1), ("北京", 1)], bits=10)
    listed = gazetteer.with_names([("京东", 2), ("腾讯", 2), ("太长的名字不会进入词典表", 2)])
    codes = listed.match_codes(normalise(codepoints("腾讯与京东在北京")))
    assert codes[0:2, 2].tolist() == [1, 3]  # 腾讯: ORG begin, end
    assert codes[3:5, 2].tolist() == [1, 3] and codes[3:5, 1].tolist() == [0, 0]  # 京东: ORG only
    assert codes[6:8, 1].tolist() == [1, 3]  # 北京 unchanged
    # The original table is untouched (a copy is returned).
    assert gazetteer.match_codes(normalise(codepoints("腾讯")))[:, 2].tolist() == [0, 0]


def test_curated_chinese_organisations_are_found(recognizer: EntityRecognizer) -> None:
    names = {
        name
        for name, _ in read_extra_names(
            (MODEL_FILE.parent / EXTRA_NAMES_FILE).read_text(encoding="utf-8")
        )
    }
    assert {"腾讯", "华为", "百度", "京东"} <= names
    texts = ["腾讯与京东签署战略合作协议。", "百度今天发布了新的搜索产品。"]
    found = [{(e.text, e.type) for e in r} for r in recognizer.analyze_batch(texts, ["zh", "zh"])]
    assert ("腾讯", "ORG") in found[0] and ("京东", "ORG") in found[0]
    assert ("百度", "ORG") in found[1]
    assert isinstance(recognizer.tagger, ChineseEntityTagger)
