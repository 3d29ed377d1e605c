"""Train the English entity tagger shipped in analyzers/models/entities_en/.

    python scripts/train_entities_en.py          # train on all of CoNLL-2003 train, write
    python scripts/train_entities_en.py --tune   # train on the train split, score tune

A token-level BIO linear-chain CRF (python-crfsuite, needed at training time only) over
the hashed feature keys of ``analyzers.entities_en``, trained on CoNLL-2003 train
(PER / LOC / ORG / MISC), exported into the fingerprinted hash table the runtime reads
with numpy. The gazetteer feature is built from the training mentions; while training,
each document sees a gazetteer built from the other folds only (jackknife), so the CRF
learns how far to trust a gazetteer hit on a name it has not memorised. Settings were
chosen on the tune documents; conll2003_dev is scored, never used for choices.
Deterministic (hash split, fixed folds, L-BFGS).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.entities_en import (  # noqa: E402
    KINDS,
    PAD,
    TAGS,
    AtomTable,
    EnglishEntityTagger,
    EnglishFeatures,
    TokenGazetteer,
    tokenize,
)
from analyzers.ner_features import HashedWeights  # noqa: E402
from evaluation.data import default_data_dir, exit_on_data_error  # noqa: E402
from evaluation.entities_en import (  # noqa: E402
    SCORED_KINDS,
    EnSentence,
    EnSplit,
    dev_sentences,
    prf,
    train_sentences,
)

DEFAULT_OUT = ROOT / "analyzers" / "models" / "entities_en"
WEIGHTS_FILE = "weights.npz"
WEIGHT_BITS = 19
FOLDS = 4


def token_labels(sentence: EnSentence, spans: Sequence[tuple[int, int]]) -> list[str]:
    labels = ["O"] * len(spans)
    for start, end, kind in sentence.spans:
        first = True
        for i, (s, e) in enumerate(spans):
            if s >= start and e <= end:
                labels[i] = f"{'B' if first else 'I'}-{kind}"
                first = False
    return labels


def gazetteer_of(sentences: Sequence[EnSentence]) -> TokenGazetteer:
    names: dict[tuple[str, ...], int] = {}
    for sentence in sentences:
        for start, end, kind in sentence.spans:
            words = tuple(sentence.text[s:e] for s, e in tokenize(sentence.text[start:end]))
            names[words] = names.get(words, 0) | (1 << KINDS.index(kind))
    return TokenGazetteer.build(names)


def featurise(
    features: EnglishFeatures, sentences: Sequence[EnSentence]
) -> list[tuple[list[list[str]], list[str]]]:
    """(feature keys per token as hex strings, labels) per sentence, in one batch."""
    spans = [tokenize(s.text) for s in sentences]
    tokens = features.layout([s.text for s in sentences], spans)
    columns = features.key_columns(tokens)
    keys = np.stack(columns, axis=1)
    out: list[tuple[list[list[str]], list[str]]] = []
    pos = PAD
    for sentence, toks in zip(sentences, spans, strict=True):
        rows = keys[pos : pos + len(toks)].tolist()
        out.append(([[format(k, "x") for k in row] for row in rows], token_labels(sentence, toks)))
        pos += len(toks) + PAD
    return out


def train_crf(
    train: list[EnSentence], c1: float, c2: float, iterations: int, folds: int
) -> tuple[dict[int, np.ndarray], np.ndarray, TokenGazetteer]:
    import pycrfsuite

    table = AtomTable(capacity=10_000_000)
    trainer = pycrfsuite.Trainer(verbose=False)
    documents = sorted({s.document for s in train})
    fold_of = {d: i % folds for i, d in enumerate(documents)}
    for fold in range(folds):
        inside = [s for s in train if fold_of[s.document] == fold]
        outside = [s for s in train if fold_of[s.document] != fold]
        features = EnglishFeatures(
            gazetteer_of(outside) if folds > 1 else gazetteer_of(train), table
        )
        for xseq, yseq in featurise(features, inside):
            if xseq:
                trainer.append(xseq, yseq)
    trainer.set_params(
        {
            "c1": c1,
            "c2": c2,
            "max_iterations": iterations,
            "feature.possible_transitions": True,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = str(Path(tmp) / "crf.model")
        trainer.train(model)
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        info = tagger.info()
    tag_index = {t: i for i, t in enumerate(TAGS)}
    weights: dict[int, np.ndarray] = {}
    for (attr, label), weight in info.state_features.items():
        vec = weights.setdefault(int(attr, 16), np.zeros(len(TAGS), dtype=np.float32))
        vec[tag_index[label]] = weight
    transitions = np.zeros((len(TAGS), len(TAGS)), dtype=np.float32)
    for (prev, nxt), weight in info.transitions.items():
        transitions[tag_index[prev], tag_index[nxt]] = weight
    return weights, transitions, gazetteer_of(train)


def model_arrays(
    weights: dict[int, np.ndarray], transitions: np.ndarray, gazetteer: TokenGazetteer
) -> dict[str, np.ndarray]:
    table = HashedWeights.build(weights, len(TAGS), WEIGHT_BITS)
    return {
        "tags": np.array(TAGS),
        "transitions": transitions.astype(np.float32),
        "slot_rows": table.slot_rows,
        "slot_fingerprints": table.slot_fingerprints,
        "rows": table.rows.astype(np.float16),
        "gaz_keys": gazetteer.keys,
        "gaz_kinds": gazetteer.kinds,
    }


def score(tagger: EnglishEntityTagger, gold: list[EnSentence]) -> str:
    predicted = tagger.spans_batch([s.text for s in gold], all_kinds=True)
    parts = []
    for name, kinds in (("PER/LOC/ORG", SCORED_KINDS), *((k, (k,)) for k in KINDS)):
        r = prf(gold, predicted, kinds)
        parts.append(
            f"{name} P {r['precision']:.4f} R {r['recall']:.4f} F1 {r['f1_micro']:.4f}"
            if name == "PER/LOC/ORG"
            else f"{name} {r['f1_micro']:.4f}"
        )
    return "; ".join(parts)


@exit_on_data_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tune", action="store_true", help="train on train only, score tune")
    parser.add_argument("--c1", type=float, default=0.1)
    parser.add_argument("--c2", type=float, default=0.01)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--margin", type=float, default=6.0)
    parser.add_argument("--limit", type=int, default=0, help="subsample training (quick runs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root: Path = args.data_dir or default_data_dir()
    splits: set[EnSplit] = {"train"} if args.tune else {"train", "tune"}
    train = train_sentences(root, splits)
    if args.limit:
        train = train[: args.limit]
    scored = train_sentences(root, {"tune"}) if args.tune else dev_sentences(root)
    print(f"entities_en: {len(train)} training sentences", flush=True)
    weights, transitions, gazetteer = train_crf(
        train, args.c1, args.c2, args.iterations, args.folds
    )
    arrays = model_arrays(weights, transitions, gazetteer)
    tagger = EnglishEntityTagger.from_arrays(arrays, margin=args.margin)
    name = "tune split" if args.tune else "conll2003_dev"
    print(f"entities_en {name}: {score(tagger, scored)}", flush=True)
    if not args.tune:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out / WEIGHTS_FILE, **arrays)  # type: ignore[arg-type]
        size = (args.out / WEIGHTS_FILE).stat().st_size
        print(f"entities_en: wrote {args.out / WEIGHTS_FILE} ({size / 1e6:.1f} MB)")
    print(f"entities_en: {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
