"""The English models: the CoNLL-trained entity CRF and the n-gram sentiment model.

Golden examples any careful reader agrees on, the tokeniser's CoNLL conventions, batch
independence, and the training scripts' handling of missing or malformed data files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzers.entities import EntityRecognizer
from analyzers.entities_en import (
    KINDS,
    AtomTable,
    EnglishFeatures,
    TokenGazetteer,
    stable_hash,
    tokenize,
)
from analyzers.sentiment import SentimentAnalyzer
from analyzers.sentiment_en import terms, words

ROOT = Path(__file__).resolve().parents[2]
EN_NER = ROOT / "analyzers/models/entities_en/weights.npz"
EN_SENTIMENT = ROOT / "analyzers/models/sentiment_en/en_ngram.npz"

NEWS = "Microsoft announced on Tuesday that it will open a new research lab in London"


@pytest.fixture(scope="module")
def recognizer() -> EntityRecognizer:
    if not EN_NER.exists():
        pytest.skip("the English entity weights are absent")
    loaded = EntityRecognizer.load()
    assert loaded.english is not None
    return loaded


@pytest.fixture(scope="module")
def sentiment() -> SentimentAnalyzer:
    if not EN_SENTIMENT.exists():
        pytest.skip("the English sentiment weights are absent")
    return SentimentAnalyzer.load()


def _entities(recognizer: EntityRecognizer, text: str) -> set[tuple[str, str]]:
    (found,) = recognizer.analyze_batch([text], ["en"])
    for ent in found:
        assert text[ent.start : ent.end] == ent.text
    return {(e.text, e.type) for e in found}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Satya Nadella, the chief executive of Microsoft, spoke to reporters in Central Park.",
            {("Satya Nadella", "PER"), ("Microsoft", "ORG"), ("Central Park", "LOC")},
        ),
        (
            "Microsoft will open a research lab in London.",
            {("Microsoft", "ORG"), ("London", "LOC")},
        ),
        ("We had a picnic in Central Park on Sunday.", {("Central Park", "LOC")}),
        ("Satya Nadella said the company would keep hiring.", {("Satya Nadella", "PER")}),
        (
            "Angela Merkel met Emmanuel Macron in Berlin on Monday.",
            {("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Berlin", "LOC")},
        ),
        # A full stop ends the name: sentences are decoded apart, as trained.
        ("Just got back from a week in Lisbon. The food was great!", {("Lisbon", "LOC")}),
        # Listed in extra_names.tsv: a company today, a river in the 1996 training news.
        ("Amazon reported record quarterly profits.", {("Amazon", "ORG")}),
        # Sentence-initial curated names: their word clusters (from IMDB text, where
        # "Google" is a verb) are left out, so the gazetteer hit decides.
        ("Google said on Monday it would invest in Paris.", {("Google", "ORG"), ("Paris", "LOC")}),
        ("Netflix and Samsung signed a deal.", {("Netflix", "ORG"), ("Samsung", "ORG")}),
        (
            "Shares of Toyota rose 3 percent in Tokyo after the Bank of Japan's decision.",
            {("Toyota", "ORG"), ("Tokyo", "LOC"), ("Bank of Japan", "ORG")},
        ),
    ],
)
def test_golden_english_entities(
    recognizer: EntityRecognizer, text: str, expected: set[tuple[str, str]]
) -> None:
    found = _entities(recognizer, text)
    assert expected <= found, found
    # Weekdays, nationalities (MISC in CoNLL) and common words are never entities.
    assert not {t for t, _ in found} & {"Monday", "Sunday", "Tuesday", "We", "Shares"}
    assert not any(t.endswith((".", " The")) for t, _ in found)


def test_misc_is_not_reported(recognizer: EntityRecognizer) -> None:
    found = _entities(recognizer, "The German and French ministers met in Brussels.")
    assert ("Brussels", "LOC") in found
    assert all(kind in {"PER", "LOC", "ORG"} for _, kind in found)
    assert not any(t in {"German", "French"} for t, _ in found)


def test_english_batch_equals_one_at_a_time(recognizer: EntityRecognizer) -> None:
    texts = [
        NEWS,
        "",
        "   ",
        "LONDON 1996-08-30",
        "Satya Nadella visited Microsoft's office in Seattle.",
        "no capitals here at all",
        "Barack Obama met officials of the Ministry of Commerce in Beijing on Monday. " * 40,
    ]
    batch = recognizer.analyze_batch(texts, ["en"] * len(texts))
    single = [recognizer.analyze_batch([t], ["en"])[0] for t in texts]
    assert batch == single
    assert batch[1] == [] and batch[2] == []
    assert sum(1 for e in batch[-1] if e.text == "Barack Obama" and e.type == "PER") == 40


def test_version_names_both_weight_files(recognizer: EntityRecognizer) -> None:
    assert recognizer.version.startswith("crf-")
    assert "+en-" in recognizer.version


def test_tokeniser_follows_conll_conventions() -> None:
    text = "Satya Nadella's U.S. trip, Mr. Smith didn't go (3.5%) on 1996-08-22."
    tokens = [text[s:e] for s, e in tokenize(text)]
    assert tokens[:5] == ["Satya", "Nadella", "'s", "U.S.", "trip"]
    assert "Mr." in tokens and "1996-08-22" in tokens and "3.5" in tokens
    assert tokens[-1] == "."


def test_features_do_not_depend_on_batch_neighbours() -> None:
    gazetteer = TokenGazetteer.build({("Central", "Park"): 1 << KINDS.index("LOC")})
    features = EnglishFeatures(gazetteer, AtomTable())
    both = features.layout(["Central Park is big", "Central Park"])
    alone = features.layout(["Central Park"])
    keys_both = np.stack(features.key_columns(both), axis=1)
    keys_alone = np.stack(features.key_columns(alone), axis=1)
    second = np.flatnonzero(both.owner == 1)
    np.testing.assert_array_equal(keys_both[second], keys_alone[alone.owner == 0])
    codes = gazetteer.match_codes(features.table.atoms(alone.ids)[:, 0], alone.capital)
    assert codes[alone.owner == 0, KINDS.index("LOC")].tolist() == [1, 3]


def test_atom_table_is_bounded() -> None:
    table = AtomTable(capacity=50)
    for start in range(0, 500, 10):
        ids = table.rows([f"w{i}" for i in range(start, start + 10)])
        assert ids.max() <= 60
    assert stable_hash("Microsoft") == stable_hash("Microsoft")


# The English events of examples/events.jsonl (what `make demo` shows).
DEMO_REVIEW = (
    "The hotel room was spotless and the staff were incredibly friendly. Breakfast was "
    "excellent, and the location near Central Park could not be better."
)
DEMO_COMPLAINT = (
    "Terrible experience. The package arrived broken, customer support never answered, "
    "and the refund took six weeks."
)
DEMO_NEWS = (
    "Microsoft announced on Tuesday that it will open a new research lab in London. "
    "Satya Nadella said the lab will focus on climate modelling and will hire 200 "
    "engineers over the next two years."
)


def test_demo_entities(recognizer: EntityRecognizer) -> None:
    assert _entities(recognizer, DEMO_NEWS) == {
        ("Microsoft", "ORG"),
        ("London", "LOC"),
        ("Satya Nadella", "PER"),
    }
    assert _entities(recognizer, DEMO_REVIEW) == {("Central Park", "LOC")}


def test_demo_sentiment(sentiment: SentimentAnalyzer) -> None:
    review, complaint, news = sentiment.analyze_batch(
        [DEMO_REVIEW, DEMO_COMPLAINT, DEMO_NEWS], ["en"] * 3
    )
    assert review.label == "positive" and review.score > 0.7
    assert complaint.label == "negative" and complaint.score > 0.7
    assert news.label in ("neutral", "positive") and news.scores.negative < 0.4


def test_factual_news_is_never_confidently_negative(sentiment: SentimentAnalyzer) -> None:
    for text in (NEWS, NEWS + ".", DEMO_NEWS):
        (result,) = sentiment.analyze_batch([text], ["en"])
        assert result.label in ("neutral", "positive"), result
        assert result.scores.negative < 0.4
        if result.label == "positive":
            assert result.score < 0.7  # weakly positive at most


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("A gorgeous, witty and deeply moving film.", "positive"),
        ("The plot is dull and the acting is even worse.", "negative"),
        ("Great phone, the battery lasts for days.", "positive"),
        ("The food was cold and the waiter was rude.", "negative"),
        ("It's not a good movie.", "negative"),
        ("I didn't like it at all.", "negative"),
        (
            "I went in expecting little, but this film won me over. The performances are "
            "superb, the script is sharp and funny, and the last half hour is genuinely "
            "moving. One of the best films of the year; I will watch it again.",
            "positive",
        ),
        (
            "What a waste of two hours. The story makes no sense, the characters are flat "
            "and the dialogue is painful. I kept checking my watch and nearly walked out. "
            "Avoid it.",
            "negative",
        ),
    ],
)
def test_golden_english_sentiment(sentiment: SentimentAnalyzer, text: str, label: str) -> None:
    (result,) = sentiment.analyze_batch([text], ["en"])
    assert result.label == label, result


def test_negation_scope_marks_words_until_punctuation() -> None:
    assert words("It is not good, but fun") == [
        "it",
        "is",
        "not",
        "not_good",
        "|",
        "|",
        "but",
        "fun",
    ]
    assert words("isn't great") == words("is n't great") == ["is", "not", "not_great"]
    assert "not not_good" in terms("not good")
    assert not any("|" in t for t in terms("good. bad"))


def _run(script: str, data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"CONTENTSTREAM_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    args = [sys.executable, str(ROOT / "scripts" / script), "--out", str(tmp_path / "out")]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("script", ["train_entities_en.py", "train_sentiment_en.py"])
def test_missing_data_file_names_it_and_exits_2(script: str, tmp_path: Path) -> None:
    result = _run(script, tmp_path / "nothing-here", tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "nothing-here" in lines[0] and "missing" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("script", "path", "content"),
    [
        (
            "train_entities_en.py",
            "ner_en/conll2003_train.jsonl",
            '{"text": "EU rejects", "entities": []}\n{"text": oops\n',
        ),
        (
            "train_entities_en.py",
            "ner_en/conll2003_train.jsonl",
            '{"text": "EU rejects", "entities": [{"text": "EU", "type": "ORG", "start": 3}]}\n',
        ),
        (
            "train_sentiment_en.py",
            "sentiment_en/sst2_train.jsonl",
            '{"text": "fun", "label": "yes"}\n',
        ),
    ],
)
def test_malformed_data_file_names_it_and_exits_2(
    script: str, path: str, content: str, tmp_path: Path
) -> None:
    target = tmp_path / "data" / path
    target.parent.mkdir(parents=True)
    target.write_text(content)
    result = _run(script, tmp_path / "data", tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert Path(path).name in lines[0]
