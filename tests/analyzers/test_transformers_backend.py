"""The transformers backend on tiny BERT models built here (no downloads, CPU only)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import reference_entity_decoder  # noqa: E402
import tiny_models  # noqa: E402  (after the skips: it imports torch and transformers)

from analyzers import transformers_runtime  # noqa: E402
from analyzers.base import Analyzer  # noqa: E402
from analyzers.config import TransformersConfig  # noqa: E402
from analyzers.transformers_entities import (  # noqa: E402
    TagRole,
    TransformersEntityRecognizer,
    decode_batch,
    parse_tag,
    tagged_windows,
)
from analyzers.transformers_runtime import (  # noqa: E402
    MAX_PADDING_SHARE,
    bf16_supported,
    length_bucket,
    micro_batches,
    warmup_shapes,
)
from analyzers.transformers_sentiment import (  # noqa: E402
    TransformersSentimentAnalyzer,
    sentiment_classes,
)
from schemas.errors import ConfigurationError  # noqa: E402
from schemas.results import Entity, Sentiment  # noqa: E402

pytestmark = pytest.mark.slow  # builds and runs real (tiny) torch models: seconds, not ms

TEST_CHARS = "张三李四王五北京上海大学工作在电影很好坏酒店服务差我们公司银行今天天气"
TOKENS = tiny_models.vocab_tokens(cjk_chars=2000, extra=[TEST_CHARS])

TEXTS = [
    "今天天气很好",
    "这个酒店服务很差，我们不会再来了",
    "好",
    "张三在北京大学工作",
    "The hotel room was great and the service was good",
    "",
    "电影" * 40,
    "我们公司 Google 银行",
]
SIMILAR_LENGTH_TEXTS = [
    f"这个酒店服务很差{i}" if i % 2 else f"今天天气很好，我们去上海{i}" for i in range(32)
]


def _config(model_dir: Path, **overrides: Any) -> TransformersConfig:
    # fp32 unless a test asks otherwise: the numerical checks compare against fp32
    # references, and whether "auto" means bf16 depends on the machine.
    settings: dict[str, Any] = {
        "model": str(model_dir),
        "batch_size": 4,
        "max_length": 64,
        "precision": "fp32",
    }
    settings.update(overrides)
    return TransformersConfig(**settings)


def _languages(texts: Sequence[str]) -> list[str]:
    return ["zh"] * len(texts)


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="module")
def sentiment_dir(models_root: Path) -> Path:
    return tiny_models.build_model(
        models_root / "tiny-sentiment", task="sentiment", labels=("负面", "正面"), tokens=TOKENS
    )


@pytest.fixture(scope="module")
def entities_dir(models_root: Path) -> Path:
    return tiny_models.build_model(models_root / "tiny-entities", task="entities", tokens=TOKENS)


TAGS = {
    "张": "B-PER", "三": "I-PER", "李": "B-PER", "四": "I-PER",
    "北": "B-LOC", "京": "I-LOC", "上": "B-LOC", "海": "I-LOC",
    "银": "B-ORG", "行": "I-ORG",
    "alice": "B-PER", "google": "B-ORG", "new": "B-LOC", "york": "I-LOC",
}  # fmt: skip


@pytest.fixture(scope="module")
def tagged_entities_dir(models_root: Path) -> Path:
    directory = tiny_models.build_model(
        models_root / "tagged-entities", task="entities", tokens=TOKENS
    )
    tiny_models.set_token_tags(directory, TAGS)
    return directory


@pytest.fixture(scope="module")
def sentiment(sentiment_dir: Path) -> TransformersSentimentAnalyzer:
    return TransformersSentimentAnalyzer(_config(sentiment_dir))


@pytest.fixture(scope="module")
def entities(entities_dir: Path) -> TransformersEntityRecognizer:
    return TransformersEntityRecognizer(_config(entities_dir))


@pytest.fixture(scope="module")
def tagged(tagged_entities_dir: Path) -> TransformersEntityRecognizer:
    return TransformersEntityRecognizer(_config(tagged_entities_dir))


@dataclass(frozen=True)
class ForwardCall:
    rows: int
    width: int
    real_tokens: int


@pytest.fixture()
def forward_calls() -> Iterator[Callable[[Any], list[ForwardCall]]]:
    """Records the model's forward passes; yields a function that starts recording."""
    handles: list[Any] = []

    def record(model: Any) -> list[ForwardCall]:
        calls: list[ForwardCall] = []

        def hook(_module: Any, _args: Any, kwargs: dict[str, Any], _output: Any) -> None:
            rows, width = kwargs["input_ids"].shape
            calls.append(ForwardCall(rows, width, int(kwargs["attention_mask"].sum())))

        handles.append(model.register_forward_hook(hook, with_kwargs=True))
        return calls

    yield record
    for handle in handles:
        handle.remove()


# --- sentiment ----------------------------------------------------------------------


def test_sentiment_is_an_analyzer_with_a_model_version(
    sentiment: TransformersSentimentAnalyzer, sentiment_dir: Path
) -> None:
    assert isinstance(sentiment, Analyzer)
    assert sentiment.name == "sentiment"
    prefix, digest = sentiment.version.rsplit("@", 1)
    assert prefix == "transformers:tiny-sentiment"
    assert len(digest) == 12 and all(c in "0123456789abcdef" for c in digest)
    assert sentiment.classes == ["negative", "positive"]


def test_sentiment_outputs_valid_probabilities(sentiment: TransformersSentimentAnalyzer) -> None:
    results = sentiment.analyze_batch(TEXTS, _languages(TEXTS))
    assert len(results) == len(TEXTS)
    for result in results:
        assert isinstance(result, Sentiment)
        scores = result.scores
        assert math.isclose(scores.positive + scores.negative + scores.neutral, 1.0, abs_tol=1e-6)
        assert scores.neutral == 0.0  # a 2-label model
        assert result.score == max(scores.positive, scores.negative)
        assert result.label == ("positive" if scores.positive >= scores.negative else "negative")
    # Random weights still depend on the text: distinct inputs give distinct outputs.
    assert len({round(r.scores.positive, 6) for r in results}) > 1


def test_sentiment_keeps_input_order_across_length_sorted_batches(
    sentiment: TransformersSentimentAnalyzer,
) -> None:
    batched = sentiment.analyze_batch(TEXTS, _languages(TEXTS))
    one_by_one = [sentiment.analyze_batch([t], ["zh"])[0] for t in TEXTS]
    for together, alone in zip(batched, one_by_one, strict=True):
        assert together.label == alone.label
        assert together.scores.positive == pytest.approx(alone.scores.positive, abs=1e-5)


def test_sentiment_runs_one_forward_pass_per_micro_batch(
    sentiment_dir: Path, forward_calls: Callable[[Any], list[ForwardCall]]
) -> None:
    analyzer = TransformersSentimentAnalyzer(_config(sentiment_dir, batch_size=32))
    calls = forward_calls(analyzer.loaded.model)
    texts = SIMILAR_LENGTH_TEXTS
    assert len(analyzer.analyze_batch(texts, _languages(texts))) == 32
    assert [c.rows for c in calls] == [32]
    calls.clear()
    assert len(analyzer.analyze_batch(texts * 2 + texts[:6], ["zh"] * 70)) == 70
    assert [c.rows for c in calls] == [32, 32, 6]


def test_mixed_lengths_are_batched_with_bounded_padding(
    sentiment_dir: Path, forward_calls: Callable[[Any], list[ForwardCall]]
) -> None:
    analyzer = TransformersSentimentAnalyzer(_config(sentiment_dir, batch_size=32))
    calls = forward_calls(analyzer.loaded.model)
    texts = [t + str(i) for i, t in enumerate(TEXTS * 4)]
    analyzer.analyze_batch(texts, _languages(texts))
    assert sum(c.rows for c in calls) == len(texts)
    assert 1 < len(calls) <= 8  # split by length, still far fewer passes than texts
    for call in calls:
        assert call.rows <= 32
        assert call.real_tokens >= call.rows * call.width * (1 - MAX_PADDING_SHARE)


@pytest.mark.parametrize(
    ("lengths", "size", "budget", "expected"),
    [
        ([10] * 5, 2, 1000, [[0, 1], [2, 3], [4]]),
        # A long text never pads short ones: it has a bucket (and a batch) of its own.
        ([20] * 31 + [256], 32, 8192, [[31], list(range(31))]),
        # Buckets (64, 128], (32, 64], (16, 32], (4, 8]: 100 and 50 are not batched.
        ([5, 100, 50, 26, 25], 8, 8192, [[1], [2], [3, 4], [0]]),
        # The budget cuts a bucket: 3 x 30 = 90 fits 100, a fourth would be 120.
        ([30] * 7, 32, 100, [[0, 1, 2], [3, 4, 5], [6]]),
        # A sequence over the budget goes alone.
        ([300, 20, 20], 8, 256, [[0], [1, 2]]),
    ],
)
def test_micro_batches_split_by_count_bucket_and_token_budget(
    lengths: list[int], size: int, budget: int, expected: list[list[int]]
) -> None:
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    assert list(micro_batches(order, lengths, size, budget)) == expected


@pytest.mark.parametrize("seed", range(5))
def test_token_budget_batches_never_exceed_the_budget_and_cover_every_sequence(
    seed: int,
) -> None:
    rng = random.Random(seed)
    budget = rng.choice([256, 512, 1000, 4096])
    size = rng.choice([1, 4, 32, 64])
    lengths = [min(budget, int(rng.lognormvariate(3.0, 1.0)) + 2) for _ in range(500)]
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    batches = list(micro_batches(order, lengths, size, budget))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= size
        assert len(batch) * width <= budget
        assert len({length_bucket(lengths[i]) for i in batch}) == 1
        assert sum(lengths[i] for i in batch) > len(batch) * width * (1 - MAX_PADDING_SHARE)


def test_token_budget_bounds_every_forward_pass_and_results_keep_input_order(
    sentiment: TransformersSentimentAnalyzer,
    sentiment_dir: Path,
    forward_calls: Callable[[Any], list[ForwardCall]],
) -> None:
    budget = 96
    analyzer = TransformersSentimentAnalyzer(
        _config(sentiment_dir, batch_size=32, batch_tokens=budget)
    )
    calls = forward_calls(analyzer.loaded.model)
    rng = random.Random(7)
    texts = ["".join(rng.choice(TEST_CHARS) for _ in range(rng.randint(0, 60))) for _ in range(80)]
    batched = analyzer.analyze_batch(texts, _languages(texts))
    assert sum(c.rows for c in calls) == len(texts)
    assert all(c.rows * c.width <= budget for c in calls)
    one_by_one = [sentiment.analyze_batch([t], ["zh"])[0] for t in texts]
    for together, alone in zip(batched, one_by_one, strict=True):
        assert together.scores.positive == pytest.approx(alone.scores.positive, abs=1e-5)


def test_chunks_tokenised_ahead_in_a_thread_give_the_same_results(
    sentiment_dir: Path, entities_dir: Path
) -> None:
    texts = [f"{t}{i}" for i, t in enumerate(TEXTS * 5)]
    analyzers: list[Any] = [
        TransformersSentimentAnalyzer(_config(sentiment_dir)),
        TransformersEntityRecognizer(_config(entities_dir, max_length=16)),
    ]
    for analyzer in analyzers:
        whole = analyzer.analyze_batch(texts, _languages(texts))
        assert analyzer.prefetch.chunk >= len(texts)  # one chunk: no thread
        analyzer.prefetch.chunk = 7
        chunked = analyzer.analyze_batch(texts, _languages(texts))
        assert analyzer.prefetch._executor is not None
        assert len(chunked) == len(texts)
        if isinstance(analyzer, TransformersSentimentAnalyzer):
            for a, b in zip(whole, chunked, strict=True):
                assert a.scores.positive == pytest.approx(b.scores.positive, abs=1e-5)
        else:
            assert chunked == whole


def test_warm_up_runs_every_length_bucket(
    sentiment_dir: Path, forward_calls: Callable[[Any], list[ForwardCall]]
) -> None:
    analyzer = TransformersSentimentAnalyzer(
        _config(sentiment_dir, batch_size=8, max_length=64, batch_tokens=128)
    )
    calls = forward_calls(analyzer.loaded.model)
    analyzer.warm_up()
    shapes = [(c.rows, c.width) for c in calls]
    # One row and the fullest batch the budget allows (at most 4 rows on a CPU).
    assert shapes == [(1, 8), (4, 8), (1, 16), (4, 16), (1, 32), (4, 32), (1, 64), (2, 64)]
    assert warmup_shapes(64, 8, 128)[-2:] == [(1, 64), (2, 64)]


def test_a_token_budget_below_max_length_is_a_configuration_error(sentiment_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="batch_tokens"):
        TransformersSentimentAnalyzer(_config(sentiment_dir, max_length=64, batch_tokens=32))


def test_sentiment_of_no_texts_is_empty(sentiment: TransformersSentimentAnalyzer) -> None:
    assert sentiment.analyze_batch([], []) == []


@pytest.mark.parametrize(
    ("labels", "forced", "expected"),
    [
        (("负面", "正面"), "正面", "positive"),
        (("消极", "积极"), "消极", "negative"),
        (("LABEL_0", "LABEL_1"), "LABEL_1", "positive"),
        (("LABEL_0", "LABEL_1", "LABEL_2"), "LABEL_1", "neutral"),
        (("NEG", "NEU", "POS"), "POS", "positive"),
        (("negative", "neutral", "positive"), "negative", "negative"),
        (("1 star", "2 stars", "3 stars", "4 stars", "5 stars"), "2 stars", "negative"),
    ],
)
def test_hand_set_model_maps_its_label_end_to_end(
    models_root: Path, labels: tuple[str, ...], forced: str, expected: str
) -> None:
    directory = tiny_models.build_model(
        models_root / f"forced-{'-'.join(labels)}-{forced}".replace(" ", "_"),
        task="sentiment",
        labels=labels,
        tokens=TOKENS,
    )
    tiny_models.set_sequence_label(directory, forced)
    analyzer = TransformersSentimentAnalyzer(_config(directory))
    results = analyzer.analyze_batch(TEXTS, _languages(TEXTS))
    # Classifier weights 0 and bias +4 on one label, -4 on the others: softmax is known.
    others = len(labels) - 1
    expected_probability = math.exp(4) / (math.exp(4) + others * math.exp(-4))
    for result in results:
        assert result.label == expected
        if others == 4:  # 5-star: 1 and 2 stars both feed negative
            assert result.score == pytest.approx(
                (math.exp(4) + math.exp(-4)) / (math.exp(4) + 4 * math.exp(-4)), abs=1e-5
            )
        else:
            assert result.score == pytest.approx(expected_probability, abs=1e-5)
        if len(labels) == 2:
            assert result.scores.neutral == 0.0


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "LABEL_0", 1: "LABEL_1"}, ["negative", "positive"]),
        ({0: "Positive", 1: "Negative"}, ["positive", "negative"]),
        ({0: "中性", 1: "负面", 2: "正面"}, ["neutral", "negative", "positive"]),
    ],
)
def test_sentiment_classes_from_label_names(id2label: dict[int, str], expected: list[str]) -> None:
    assert sentiment_classes(id2label) == expected


@pytest.mark.parametrize(
    "id2label",
    [{0: "sports", 1: "politics"}, {0: "positive", 1: "neutral"}, {0: "LABEL_0"}],
)
def test_unmappable_sentiment_labels_are_a_configuration_error(
    id2label: dict[int, str],
) -> None:
    with pytest.raises(ConfigurationError):
        sentiment_classes(id2label)


# --- entities -----------------------------------------------------------------------


def _assert_spans_slice_text(texts: Sequence[str], found: Sequence[Sequence[Entity]]) -> None:
    for text, entities in zip(texts, found, strict=True):
        for entity in entities:
            assert isinstance(entity, Entity)
            assert entity.type in {"PER", "LOC", "ORG"}
            assert 0 <= entity.start < entity.end <= len(text)
            assert text[entity.start : entity.end] == entity.text


def test_entities_is_an_analyzer(entities: TransformersEntityRecognizer) -> None:
    assert isinstance(entities, Analyzer)
    assert entities.name == "entities"
    assert entities.version.startswith("transformers:tiny-entities@")


def test_random_entity_model_spans_slice_the_original_text(
    entities: TransformersEntityRecognizer,
) -> None:
    found = entities.analyze_batch(TEXTS, _languages(TEXTS))
    assert len(found) == len(TEXTS)
    _assert_spans_slice_text(TEXTS, found)
    assert any(found)  # random weights tag something


def test_entities_keep_input_order_across_length_sorted_batches(
    entities: TransformersEntityRecognizer,
) -> None:
    batched = entities.analyze_batch(TEXTS, _languages(TEXTS))
    assert batched == [entities.analyze_batch([t], ["zh"])[0] for t in TEXTS]


def test_entities_run_one_forward_pass_for_32_texts(
    entities_dir: Path, forward_calls: Callable[[Any], list[ForwardCall]]
) -> None:
    analyzer = TransformersEntityRecognizer(_config(entities_dir, batch_size=32))
    calls = forward_calls(analyzer.loaded.model)
    texts = SIMILAR_LENGTH_TEXTS
    assert len(analyzer.analyze_batch(texts, _languages(texts))) == 32
    assert [c.rows for c in calls] == [32]


def test_hand_set_model_finds_known_chinese_entities(
    tagged: TransformersEntityRecognizer,
) -> None:
    text = "张三在北京工作，李四去了上海银行"
    assert tagged.analyze_batch([text], ["zh"]) == [
        [
            Entity(text="张三", type="PER", start=0, end=2),
            Entity(text="北京", type="LOC", start=3, end=5),
            Entity(text="李四", type="PER", start=8, end=10),
            Entity(text="上海", type="LOC", start=12, end=14),
            Entity(text="银行", type="ORG", start=14, end=16),
        ]
    ]


def test_hand_set_model_offsets_survive_lowercasing_spaces_and_word_pieces(
    tagged: TransformersEntityRecognizer,
) -> None:
    text = "  Alice works at Googleplex in  New York. 张三"
    (found,) = tagged.analyze_batch([text], ["mixed"])
    assert [(e.text, e.type) for e in found] == [
        ("Alice", "PER"),
        ("Googleplex", "ORG"),  # google (B-ORG) + ##plex: a word follows its first piece
        ("New York", "LOC"),
        ("张三", "PER"),
    ]
    _assert_spans_slice_text([text], [found])


def test_long_texts_are_windowed_not_truncated(
    tagged_entities_dir: Path, tagged: TransformersEntityRecognizer
) -> None:
    # Entities at many positions, so some straddle the edges of 16-token windows.
    text = "".join(f"{'工作' * (i % 5)}张三在{'电影' * (i % 3)}北京{'好' * i}" for i in range(12))
    windowed = TransformersEntityRecognizer(_config(tagged_entities_dir, max_length=16))
    whole = TransformersEntityRecognizer(_config(tagged_entities_dir, max_length=512))
    assert len(text) > 100
    expected = whole.analyze_batch([text], ["zh"])[0]
    assert len(expected) == 24
    assert windowed.analyze_batch([text, "李四"], ["zh", "zh"]) == [
        expected,
        [Entity(text="李四", type="PER", start=0, end=2)],
    ]


MIXED_SCHEME = ("O", "B-PER", "I-PER", "E-PER", "S-LOC", "I-LOC", "B-ORG", "M-ORG", "E-ORG",
                "PER", "B-MISC", "B-PER.NOM")  # fmt: skip
ENGLISH = [*tiny_models.ENGLISH_WORDS, "Googleplex", "walked", "Xyzzy", "naïve", "U.S.", "e-mail"]


def _random_text(rng: random.Random) -> str:
    """zh, en, mixed; empty to long (several 32-token windows), spaces and punctuation."""
    length = rng.choice([0, 1, 2, 5, 12, 30, 60, 150, 400])
    kind = rng.random()
    if kind < 0.35:
        return "".join(rng.choice(TEST_CHARS + "，。 ") for _ in range(length))
    if kind < 0.65:
        words = [rng.choice(ENGLISH) for _ in range(length // 4 + 1)]
        return rng.choice([" ", "  ", ", "]).join(words)
    return "".join(
        rng.choice(TEST_CHARS) if rng.random() < 0.6 else f" {rng.choice(ENGLISH)} "
        for _ in range(length)
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_decoding_matches_the_per_token_decoder(models_root: Path, seed: int) -> None:
    directory = models_root / "mixed-scheme-entities"
    if not (directory / "config.json").is_file():
        tiny_models.build_model(directory, task="entities", labels=MIXED_SCHEME, tokens=TOKENS)
    recognizer = TransformersEntityRecognizer(_config(directory, max_length=32, batch_size=64))
    rng = random.Random(seed)
    texts = [_random_text(rng) for _ in range(1500)]
    encoded = recognizer.loaded.tokenizer(
        texts,
        truncation=True,
        max_length=recognizer.loaded.max_length,
        stride=recognizer._stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    assert len(encoded["input_ids"]) > len(texts) * 1.2  # long texts have several windows
    labels = recognizer._forward.run(encoded["input_ids"], lambda logits: logits.argmax(-1))
    expected = reference_entity_decoder.decode(texts, encoded, labels, recognizer.roles)
    found = decode_batch(tagged_windows(texts, encoded, labels), recognizer.table)
    assert sum(map(len, expected)) > len(texts)  # a random model tags plenty
    assert found == expected
    assert recognizer.analyze_batch(texts[:50], _languages(texts[:50])) == expected[:50]


@pytest.mark.parametrize(
    ("labels", "tags", "text", "expected"),
    [
        # BIOES / BMES with People's Daily style aliases; MISC is dropped.
        (
            ("O", "S-NR", "B-NT", "M-NT", "E-NT", "B-MISC", "I-MISC"),
            {
                "张": "S-NR",
                "三": "S-NR",
                "北": "B-NT",
                "京": "M-NT",
                "大": "M-NT",
                "学": "E-NT",
                "电": "B-MISC",
                "影": "I-MISC",
            },
            "张三在北京大学看电影",
            [("张", "PER", 0), ("三", "PER", 1), ("北京大学", "ORG", 3)],
        ),
        # Plain IO tags: a run of one type is one entity.
        (
            ("O", "PERSON", "GPE"),
            {"张": "PERSON", "三": "PERSON", "北": "GPE", "京": "GPE"},
            "张三北京",
            [("张三", "PER", 0), ("北京", "LOC", 2)],
        ),
        # BIO where I follows a different type: a new entity starts (lenient IOB1).
        (
            ("O", "B-PER", "I-PER", "B-ORG", "I-ORG"),
            {"张": "B-PER", "三": "I-ORG", "四": "I-ORG"},
            "张三四",
            [("张", "PER", 0), ("三四", "ORG", 1)],
        ),
    ],
)
def test_tag_schemes_decode_to_spans(
    models_root: Path,
    labels: tuple[str, ...],
    tags: dict[str, str],
    text: str,
    expected: list[tuple[str, str, int]],
) -> None:
    directory = tiny_models.build_model(
        models_root / f"scheme-{len(labels)}-{len(tags)}",
        task="entities",
        labels=labels,
        tokens=TOKENS,
    )
    tiny_models.set_token_tags(directory, tags)
    (found,) = TransformersEntityRecognizer(_config(directory)).analyze_batch([text], ["zh"])
    assert [(e.text, e.type, e.start) for e in found] == expected
    _assert_spans_slice_text([text], [found])


@pytest.mark.parametrize(
    ("label", "role"),
    [
        ("B-PER", TagRole("B", "PER")),
        ("I_ORG", TagRole("I", "ORG")),
        ("E-NS", TagRole("E", "LOC")),
        ("S-NR", TagRole("S", "PER")),
        ("L-LOC", TagRole("E", "LOC")),
        ("U-ORG", TagRole("S", "ORG")),
        ("M-NT", TagRole("I", "ORG")),
        ("B-PER.NAM", TagRole("B", "PER")),
        ("B-PER.NOM", TagRole("O", None)),
        ("LOCATION", TagRole("I", "LOC")),
        ("B-name", TagRole("B", "PER")),
        ("B-MISC", TagRole("O", None)),
        ("O", TagRole("O", None)),
    ],
)
def test_parse_tag(label: str, role: TagRole) -> None:
    assert parse_tag(label) == role


# --- configuration ------------------------------------------------------------------


def test_version_follows_the_config_json(models_root: Path) -> None:
    first = tiny_models.build_model(models_root / "v1", task="sentiment", tokens=TOKENS)
    second = tiny_models.build_model(
        models_root / "v2",
        task="sentiment",
        tokens=TOKENS,
        shape=tiny_models.ModelShape(layers=1, hidden=32, heads=2, intermediate=64),
    )
    a = TransformersSentimentAnalyzer(_config(first)).version
    b = TransformersSentimentAnalyzer(_config(second)).version
    assert a.rsplit("@")[1] != b.rsplit("@")[1]


def test_version_follows_the_weights_and_names_a_symlinks_target(
    models_root: Path, tmp_path: Path
) -> None:
    # Same configuration, other weights: what a fine-tune written in place looks like.
    first = tiny_models.build_model(models_root / "w1", task="sentiment", tokens=TOKENS, seed=1)
    second = tiny_models.build_model(models_root / "w2", task="sentiment", tokens=TOKENS, seed=2)
    assert (first / "config.json").read_bytes() == (second / "config.json").read_bytes()
    current = tmp_path / "current"
    current.symlink_to(first)
    a = TransformersSentimentAnalyzer(_config(current)).version
    current.unlink()
    current.symlink_to(second)
    b = TransformersSentimentAnalyzer(_config(current)).version
    assert a.startswith("transformers:w1@")
    assert b.startswith("transformers:w2@")
    assert a.rsplit("@")[1] != b.rsplit("@")[1]


def test_bf16_runs_where_supported_and_says_so_in_the_version(sentiment_dir: Path) -> None:
    analyzer = TransformersSentimentAnalyzer(_config(sentiment_dir, precision="bf16"))
    supported = bf16_supported(torch.device("cpu"))
    assert analyzer.loaded.bf16 is supported
    assert analyzer.version.endswith("+bf16") is supported
    results = analyzer.analyze_batch(TEXTS, _languages(TEXTS))
    assert all(isinstance(r, Sentiment) for r in results)


@pytest.mark.parametrize(
    ("precision", "native", "expected"),
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float32),
        ("fp32", True, torch.float32),
        ("bf16", True, torch.bfloat16),
        ("bf16", False, torch.float32),
    ],
)
def test_precision_picks_bf16_only_where_the_device_runs_it_natively(
    sentiment_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    native: bool,
    expected: torch.dtype,
) -> None:
    monkeypatch.setattr(transformers_runtime, "bf16_supported", lambda device: native)
    analyzer = TransformersSentimentAnalyzer(_config(sentiment_dir, precision=precision))
    weights = next(analyzer.loaded.model.parameters())
    assert weights.dtype == expected
    assert analyzer.loaded.bf16 is (expected == torch.bfloat16)
    assert analyzer.version.endswith("+bf16") is (expected == torch.bfloat16)


def test_an_unknown_precision_is_a_configuration_error(sentiment_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="precision"):
        TransformersSentimentAnalyzer(_config(sentiment_dir, precision="fp16"))


def test_num_threads_is_applied(sentiment_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        TransformersSentimentAnalyzer(_config(sentiment_dir, num_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_configuration_error(sentiment_dir: Path, device: str) -> None:
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        TransformersSentimentAnalyzer(_config(sentiment_dir, device=device))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device": "tpu"}, "device"),
        ({"device": "not a device"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 2}, "max_length"),
        ({"num_threads": 0}, "num_threads"),
    ],
)
def test_bad_settings_are_configuration_errors(
    sentiment_dir: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TransformersSentimentAnalyzer(_config(sentiment_dir, **overrides))


def test_missing_model_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        TransformersEntityRecognizer(_config(tmp_path / "absent"))


def test_directory_without_a_model_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot load"):
        TransformersSentimentAnalyzer(_config(tmp_path))


def test_offline_hub_id_not_in_cache_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match="local files only"):
        TransformersSentimentAnalyzer(TransformersConfig(model="no-such-org/no-such-model"))
