"""scripts/train_entities.py's filter of People's Daily fragments that leave a
one-character name (中, 美, 华) unlabelled where the annotated corpora label it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from evaluation.entities_splits import Sentence

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_entities.py"


@pytest.fixture(scope="module")
def train_entities() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_entities_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ANNOTATED = [
    Sentence("中美关系发展", ((0, 1, "LOC"), (1, 2, "LOC"))),
    Sentence("中美两国", ((0, 1, "LOC"), (1, 2, "LOC"))),
    Sentence("美国总统访华", ((0, 2, "LOC"), (5, 6, "LOC"))),
    Sentence("他今天访华", ((4, 5, "LOC"),)),
    Sentence("中心城市", ()),
]


def test_contexts_are_those_marked_as_names(train_entities: ModuleType) -> None:
    contexts = train_entities.abbreviation_contexts(ANNOTATED)
    assert ("中美", 0) in contexts and ("中美", 1) in contexts
    assert ("访华", 1) in contexts
    # 中 of 中心 is never a name; a context seen once is not enough.
    assert ("中心", 0) not in contexts and ("国总", 1) not in contexts
    # Each with the kind the corpora mark there, as the run-time file lists it.
    assert contexts[("访华", 1)] == "LOC"
    listed = train_entities.one_char_names_file(contexts).splitlines()
    assert "访华\t1\tLOC" in listed and listed[0].startswith("#")


def test_fragments_with_an_unlabelled_abbreviation_are_dropped(
    train_entities: ModuleType,
) -> None:
    fragments = [
        Sentence("中美关系", ()),  # 中 and 美 left unlabelled: dropped
        Sentence("中美关系", ((0, 1, "LOC"), (1, 2, "LOC"))),  # labelled: kept
        Sentence("代表团访华", ()),  # dropped
        Sentence("中心城市建设", ()),  # kept
        Sentence("美国驻华大使", ((0, 2, "LOC"),)),  # 驻华 never seen: kept
    ]
    contexts = train_entities.abbreviation_contexts(ANNOTATED)
    kept = train_entities.drop_unlabelled_abbreviations(fragments, contexts)
    assert kept == [fragments[1], fragments[3], fragments[4]]
