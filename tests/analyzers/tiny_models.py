"""Builds small BERT models and tokenizers locally (no downloads) for tests and benchmarks.

The tokenizer is a BERT WordPiece tokenizer over a vocabulary written here: the special
tokens, ASCII, CJK punctuation, some English words and word pieces, and single CJK
characters (like bert-base-chinese, which tokenizes Chinese one character per token).
Weights are random (seeded) unless a ``set_*`` helper hand-sets them so that the output
is known in advance.

Used by tests/analyzers/test_transformers_backend.py, scripts/build_tiny_models.py and
bench/model_stage.py.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertTokenizerFast,
    PreTrainedModel,
)

Task = Literal["sentiment", "entities"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CJK_FIRST, CJK_LAST = 0x4E00, 0x9FFF
CJK_PUNCTUATION = "，。！？、；：“”‘’（）《》【】…—·～"
_ENGLISH_TEXT = (
    "the a an and or of to in on at for with is are was were be been it this that "
    "i you he she we they my your good bad great terrible love hate like not very "
    "movie film book hotel room food service price phone quality works worked "
    "alice bob carol london paris beijing shanghai google apple microsoft university "
    "new york city company bank president minister said says today news"
)
ENGLISH_WORDS = tuple(_ENGLISH_TEXT.split())
WORD_PIECES = ("##s", "##ed", "##ing", "##ly", "##er", "##est", "##plex", "##tion")

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "positive")
ENTITY_LABELS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")


@dataclass(frozen=True, slots=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int = 512


TINY = ModelShape(layers=2, hidden=32, heads=2, intermediate=64)
SMALL = ModelShape(layers=2, hidden=128, heads=2, intermediate=512)
BERT_BASE = ModelShape(layers=12, hidden=768, heads=12, intermediate=3072)

# bert-base-chinese has 21128 tokens; the full CJK block gives a vocabulary of that size.
FULL_CJK = CJK_LAST - CJK_FIRST + 1


def vocab_tokens(cjk_chars: int = FULL_CJK, extra: Iterable[str] = ()) -> list[str]:
    """Vocabulary in id order: specials first so [PAD] is 0, then no duplicates."""
    candidates: list[str] = list(SPECIAL_TOKENS)
    candidates += list(string.digits + string.ascii_lowercase + string.punctuation)
    candidates += ["##" + c for c in string.digits + string.ascii_lowercase]
    candidates += list(CJK_PUNCTUATION)
    candidates += list(ENGLISH_WORDS) + list(WORD_PIECES)
    candidates += [chr(c) for c in range(CJK_FIRST, CJK_FIRST + min(cjk_chars, FULL_CJK))]
    candidates += [piece for item in extra for piece in _pieces(item)]
    seen: set[str] = set()
    tokens: list[str] = []
    for token in candidates:
        if token not in seen:
            seen.add(token)
            tokens.append(token)
    return tokens


def _pieces(item: str) -> list[str]:
    # A multi-character CJK string contributes its characters; anything else itself.
    if len(item) > 1 and all(CJK_FIRST <= ord(c) <= CJK_LAST for c in item):
        return list(item)
    return [item.lower()]


def save_tokenizer(directory: Path, tokens: Sequence[str]) -> BertTokenizerFast:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(directory), model_max_length=512)
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_model(
    directory: Path,
    *,
    task: Task,
    labels: Sequence[str] | None = None,
    shape: ModelShape = TINY,
    tokens: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised BERT classifier and its tokenizer into ``directory``."""
    tokens = list(tokens) if tokens is not None else vocab_tokens()
    labels = tuple(labels or (SENTIMENT_LABELS if task == "sentiment" else ENTITY_LABELS))
    save_tokenizer(directory, tokens)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=shape.max_positions,
        pad_token_id=0,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    model: PreTrainedModel
    if task == "sentiment":
        model = BertForSequenceClassification(config)
    else:
        model = BertForTokenClassification(config)
    model.save_pretrained(str(directory))
    return directory


def _make_layers_transparent(
    model: BertForSequenceClassification | BertForTokenClassification,
) -> None:
    """Every token's final hidden state becomes LayerNorm(its word embedding).

    Zeroing the output projections of attention and feed-forward leaves each layer as
    LayerNorm(x) of an already normalised x, i.e. the identity; zero position and
    segment embeddings keep the hidden state a function of the token alone.
    """
    bert = model.bert
    with torch.no_grad():
        bert.embeddings.position_embeddings.weight.zero_()
        bert.embeddings.token_type_embeddings.weight.zero_()
        for layer in bert.encoder.layer:
            for linear in (layer.attention.output.dense, layer.output.dense):
                linear.weight.zero_()
                linear.bias.zero_()


def set_token_tags(directory: Path, token_tags: Mapping[str, str], default: str = "O") -> None:
    """Hand-set a saved token-classification model: each vocab token gets a fixed tag.

    Token ``t`` is tagged ``token_tags[t]`` (others ``default``) whatever its context,
    so the entities the model finds are known in advance.
    """
    model = BertForTokenClassification.from_pretrained(str(directory))
    tokenizer = BertTokenizerFast.from_pretrained(str(directory))
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    hidden = model.config.hidden_size
    if len(label2id) > hidden:
        raise ValueError("hidden size must be at least the number of labels")
    _make_layers_transparent(model)
    vocab = tokenizer.get_vocab()
    with torch.no_grad():
        embeddings = model.bert.embeddings.word_embeddings.weight
        embeddings.zero_()
        embeddings[:, label2id[default]] = 10.0
        for token, tag in token_tags.items():
            row = vocab[token]
            embeddings[row].zero_()
            embeddings[row, label2id[tag]] = 10.0
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        for index in range(len(label2id)):
            model.classifier.weight[index, index] = 1.0
    model.save_pretrained(str(directory))


def set_sequence_label(directory: Path, label: str) -> None:
    """Hand-set a saved sequence-classification model to always predict ``label``."""
    model = BertForSequenceClassification.from_pretrained(str(directory))
    index = int(model.config.label2id[label])
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-4.0)
        model.classifier.bias[index] = 4.0
    model.save_pretrained(str(directory))
