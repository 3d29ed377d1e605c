"""Train the Chinese entity tagger shipped in analyzers/models/entities/.

    python scripts/train_entities.py            # train on train+tune, write the model
    python scripts/train_entities.py --tune     # train on train only, score the tune split

A character-level BIO linear-chain CRF (python-crfsuite, needed at training time only)
over the hashed feature keys of ``analyzers.ner_features``, trained on People's Daily
(weighted x3), entity-replacement copies of it (``augment``), Weibo and CLUENER; its
weights are exported into the fingerprinted hash table the runtime reads with numpy.
The gazetteer features come from jieba's bundled dictionary (words tagged nr/nrfg/nrt,
ns, nt). Deterministic: the split is by sha1 of the text, the augmentation is seeded
and L-BFGS is deterministic.

``--domain-features`` trains with "frustratingly easy" domain adaptation (Daume 2007):
every feature key is emitted twice, as itself (shared by all corpora) and prefixed with
its sentence's domain (``p:`` People's Daily and its augmented copies; ``o:`` or one
prefix per corpus for the others). At export the People's Daily model is folded into
one row per key, w[k] + w[p:k], which is exactly the People's Daily-domain CRF (the
score is linear in the features; transitions are shared), so the table format and the
run-time cost do not change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers import segmentation  # noqa: E402
from analyzers.entities import (  # noqa: E402
    DEFAULT_MODEL_DIR,
    ONE_CHAR_NAMES_FILE,
    WEIGHTS_FILE,
    ChineseEntityTagger,
    EntityRecognizer,
    OneCharNames,
)
from analyzers.ner_features import (  # noqa: E402
    PAD,
    FeatureExtractor,
    Gazetteer,
    HashedWeights,
    batch_codepoints,
    batch_word_codes,
)
from evaluation.data import exit_on_data_error  # noqa: E402
from evaluation.entities_splits import (  # noqa: E402
    ENTITY_TYPES,
    SOURCE_BY_NAME,
    Sentence,
    Split,
    sentences,
)

BIOES_TAGS = ["O"] + [f"{p}-{k}" for k in ENTITY_TYPES for p in ("B", "I", "E", "S")]
BIO_TAGS = ["O"] + [f"{p}-{k}" for k in ENTITY_TYPES for p in ("B", "I")]
TAGS = BIO_TAGS
JIEBA_KIND = {"nr": 0, "nrfg": 0, "nrt": 0, "ns": 1, "nt": 2}
# 2^21 slots: at 2^20 the ~260k trained keys lost 12% of themselves to slot collisions.
WEIGHT_BITS = 21
GAZ_BITS = 19
PD_DOMAIN = "p"
PD_LIKE = frozenset({"peoples_daily", "renmin1998"})
# --domain-features: corpus name -> domain prefix of the non-People's Daily corpora.
DOMAIN_SCHEMES: dict[str, dict[str, str]] = {
    "other": {},  # one shared "o" domain
    "corpus": {"weibo_train": "w", "cluener": "c"},
}


def jieba_gazetteer(min_freq: int) -> Gazetteer:
    import jieba

    path = Path(jieba.__file__).parent / "dict.txt"
    entries: list[tuple[str, int]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in JIEBA_KIND and int(parts[1]) >= min_freq:
            entries.append((parts[0], JIEBA_KIND[parts[2]]))
    return Gazetteer.build(entries, bits=GAZ_BITS)


def jieba_mentions(train_persons: list[str]) -> dict[str, list[str]]:
    """Plausible replacement names from jieba's dictionary, by entity type.

    jieba's ``nr`` list is noisy (nicknames, fictional and partial names), so only 2-3
    character words starting with a surname seen in the training names are kept."""
    import jieba

    surnames = {name[0] for name in train_persons if 2 <= len(name) <= 4}
    path = Path(jieba.__file__).parent / "dict.txt"
    out: dict[str, list[str]] = {"PER": [], "LOC": [], "ORG": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        word, tag = parts[0], parts[2]
        if tag in ("nr", "nrfg") and 2 <= len(word) <= 3 and word[0] in surnames:
            out["PER"].append(word)
        elif tag == "ns" and 2 <= len(word) <= 6:
            out["LOC"].append(word)
        elif tag == "nt" and 3 <= len(word) <= 12:
            out["ORG"].append(word)
    return out


def augment(
    base: list[Sentence], copies: int, jieba_share: float, seed: int = 13
) -> list[Sentence]:
    """Entity replacement: new sentences in which each mention is swapped (p = 0.8) for
    another mention of its type, from the training sentences or jieba's dictionary.
    The context stays real, so the tagger learns names from their surroundings and
    shape rather than memorising the few names it has seen. Deterministic (seeded)."""
    import random

    pools: dict[str, list[str]] = {k: [] for k in ENTITY_TYPES}
    for sentence in base:
        for start, end, kind in sentence.spans:
            pools[kind].append(sentence.text[start:end])
    for kind in pools:
        pools[kind] = sorted(set(pools[kind]))
    extra = jieba_mentions(pools["PER"])
    rng = random.Random(seed)
    out: list[Sentence] = []
    with_names = [s for s in base if s.spans]
    for _ in range(copies):
        for sentence in with_names:
            parts: list[str] = []
            spans: list[tuple[int, int, str]] = []
            pos = 0
            length = 0
            for start, end, kind in sentence.spans:
                parts.append(sentence.text[pos:start])
                length += start - pos
                mention = sentence.text[start:end]
                if rng.random() < 0.8:
                    source = extra[kind] if rng.random() < jieba_share else pools[kind]
                    mention = rng.choice(source)
                parts.append(mention)
                spans.append((length, length + len(mention), kind))
                length += len(mention)
                pos = end
            parts.append(sentence.text[pos:])
            out.append(Sentence("".join(parts), tuple(spans)))
    return out


def labels_of(sentence: Sentence) -> list[str]:
    labels = ["O"] * len(sentence.text)
    for start, end, kind in sentence.spans:
        if TAGS is BIO_TAGS:
            labels[start] = f"B-{kind}"
            for i in range(start + 1, end):
                labels[i] = f"I-{kind}"
            continue
        if end - start == 1:
            labels[start] = f"S-{kind}"
            continue
        labels[start] = f"B-{kind}"
        for i in range(start + 1, end - 1):
            labels[i] = f"I-{kind}"
        labels[end - 1] = f"E-{kind}"
    return labels


def featurise(extractor: FeatureExtractor, text: str, domain: str | None = None) -> list[list[str]]:
    """Hex feature keys per character; with a domain, each key also as ``domain:key``."""
    codes, _ = batch_codepoints([text])
    words = batch_word_codes([segmentation.tag(text)]) if extractor.use_words else None
    keys = extractor.keys(codes, words)[PAD : PAD + len(text)]
    rows = [[format(k, "x") for k in row] for row in keys.tolist()]
    if domain is None:
        return rows
    return [row + [f"{domain}:{k}" for k in row] for row in rows]


def fold_domain(
    raw: dict[str, np.ndarray], domain: str | None
) -> tuple[dict[int, np.ndarray], dict[str, int]]:
    """Exported weights from crfsuite's per-attribute weights: the general key's row,
    plus (with a domain) that domain's copy of it, w[k] + w[domain:k]. Copies of the
    other domains are dropped. Also returns counts of keys by domain prefix."""
    features: dict[int, np.ndarray] = {}
    counts: dict[str, int] = {}
    for attr, vec in raw.items():
        prefix, sep, key = attr.rpartition(":")
        counts[prefix if sep else ""] = counts.get(prefix if sep else "", 0) + 1
        if sep and prefix != domain:
            continue
        k = int(key, 16)
        if k in features:
            features[k] = features[k] + vec
        else:
            features[k] = vec.copy()
    return features, counts


def train_crf(
    extractor: FeatureExtractor,
    data: list[tuple[Sentence, int, str | None]],
    c1: float,
    c2: float,
    iterations: int,
    keep_model: str | None = None,
    export_domain: str | None = None,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Train on (sentence, copies, domain) rows; with ``export_domain`` the exported
    weights are that domain's folded model (``fold_domain``)."""
    import pycrfsuite

    trainer = pycrfsuite.Trainer(verbose=False)
    for sentence, copies, domain in data:
        if not sentence.text:
            continue
        xseq = featurise(extractor, sentence.text, domain)
        yseq = labels_of(sentence)
        for _ in range(copies):
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
        model = keep_model or str(Path(tmp) / "crf.model")
        trainer.train(model)
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        info = tagger.info()
    tag_index = {t: i for i, t in enumerate(TAGS)}
    raw: dict[str, np.ndarray] = {}
    for (attr, label), weight in info.state_features.items():
        vec = raw.setdefault(attr, np.zeros(len(TAGS), dtype=np.float32))
        vec[tag_index[label]] = weight
    features, counts = fold_domain(raw, export_domain)
    if export_domain is not None:
        print(
            "crf attributes by domain: "
            + ", ".join(f"{k or 'shared'}={v}" for k, v in sorted(counts.items())),
            flush=True,
        )
    transitions = np.zeros((len(TAGS), len(TAGS)), dtype=np.float32)
    for (prev, nxt), weight in info.transitions.items():
        transitions[tag_index[prev], tag_index[nxt]] = weight
    return features, transitions


def model_arrays(
    extractor: FeatureExtractor, features: dict[int, np.ndarray], transitions: np.ndarray
) -> dict[str, np.ndarray]:
    weights = HashedWeights.build(features, len(TAGS), WEIGHT_BITS)
    return {
        "tags": np.array(TAGS),
        "transitions": transitions.astype(np.float32),
        "slot_rows": weights.slot_rows,
        "slot_fingerprints": weights.slot_fingerprints,
        "rows": weights.rows.astype(np.float16),
        "gaz_kinds": extractor.gazetteer.kinds,
        "gaz_fingerprints": extractor.gazetteer.fingerprints,
        "use_words": np.array(extractor.use_words),
        "extended": np.array(extractor.extended),
    }


def score(tagger: ChineseEntityTagger, gold: list[Sentence]) -> dict[str, float]:
    predicted = tagger.spans_batch([s.text for s in gold])
    tp = n_pred = n_gold = 0
    for sentence, spans in zip(gold, predicted, strict=True):
        want = set(sentence.spans)
        got = set(spans)
        tp += len(want & got)
        n_pred += len(got)
        n_gold += len(want)
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "n": float(len(gold))}


# Held-out sources whose texts no training fragment may come from (the People's Daily
# fragments are cut from the same 1998 newspaper as the People's Daily NER sentences).
FRAGMENT_SOURCE = "renmin1998"
GUARDED_SOURCES = ("peoples_daily", "msra")
DEFAULT_SOURCES = "peoples_daily:2,msra:2,renmin1998:1,cluener_train:1,cluener:1,weibo_train:1"


def drop_overlapping(fragments: list[Sentence], guarded: list[Sentence]) -> list[Sentence]:
    """Fragments that do not occur inside any guarded (tune / held-out) sentence."""
    joined = "\n".join(s.text for s in guarded)
    return [s for s in fragments if s.text not in joined]


def _char_contexts(sentence: Sentence) -> Iterator[tuple[str, int, str | None]]:
    """(character bigram, index of the character in it, its kind if it is a one-character
    name) for every character outside the longer names of ``sentence``."""
    single = {start: kind for start, end, kind in sentence.spans if end - start == 1}
    covered = {i for start, end, _ in sentence.spans if end - start > 1 for i in range(start, end)}
    text = sentence.text
    for i in range(len(text)):
        if i in covered:
            continue
        if i > 0:
            yield text[i - 1 : i + 1], 1, single.get(i)
        if i + 1 < len(text):
            yield text[i : i + 2], 0, single.get(i)


def abbreviation_contexts(annotated: list[Sentence]) -> dict[tuple[str, int], str]:
    """Bigram contexts in which the fully annotated corpora (People's Daily, MSRA) mark a
    one-character name at least twice and in 80%+ of its occurrences (中美, 访华, 在京),
    with the kind they mark most often there."""
    named: dict[tuple[str, int], Counter[str]] = {}
    seen: Counter[tuple[str, int]] = Counter()
    for sentence in annotated:
        for bigram, at, kind in _char_contexts(sentence):
            seen[bigram, at] += 1
            if kind is not None:
                named.setdefault((bigram, at), Counter())[kind] += 1
    return {
        key: kinds.most_common(1)[0][0]
        for key, kinds in sorted(named.items())
        if kinds.total() >= 2 and kinds.total() >= 0.8 * seen[key]
    }


def one_char_names_file(contexts: dict[tuple[str, int], str]) -> str:
    """``analyzers.entities.OneCharNames``'s file."""
    header = (
        "# bigram<TAB>position of the one-character name in it<TAB>kind: written by\n"
        "# scripts/train_entities.py from People's Daily and MSRA (see MODEL_CARD.md)\n"
    )
    return header + "".join(f"{b}\t{at}\t{kind}\n" for (b, at), kind in sorted(contexts.items()))


def drop_unlabelled_abbreviations(
    fragments: list[Sentence], contexts: Mapping[tuple[str, int], str]
) -> list[Sentence]:
    """Fragments without a one-character name left unlabelled.

    The People's Daily fragments mark no one-character name at all (美国驻华大使: 华 is O;
    中日关系: 中 and 日 are O), where People's Daily and MSRA mark 9% of their names that way
    (华, 中, 美 as LOC). Trained on both, the tagger learnt that a single character is never
    a name and missed nearly all of them (19 predicted of 101 in the People's Daily
    held-out sentences). A fragment with such a character in one of the ``contexts``
    (``abbreviation_contexts``) is dropped (657 of 35,198)."""
    return [
        s
        for s in fragments
        if not any(
            kind is None and (bigram, at) in contexts for bigram, at, kind in _char_contexts(s)
        )
    ]


def training_data(
    spec: str,
    splits: set[Split],
    scheme: dict[str, str] | None,
    abbreviations: Mapping[tuple[str, int], str],
) -> list[tuple[Sentence, int, str | None]]:
    """(sentence, copies, domain) rows from ``name:copies`` pairs. The sources with a
    held-out part contribute only their ``splits``; the others all of their rows.
    ``abbreviations``: the one-character name contexts the fragments are filtered by."""
    data: list[tuple[Sentence, int, str | None]] = []
    for item in filter(None, spec.split(",")):
        name, _, copies = item.partition(":")
        weight = int(copies or 1)
        source = SOURCE_BY_NAME[name]
        held = source.test_percent + source.tune_percent > 0
        rows = sentences(name, splits if held else {"train", "tune", "test"})
        if name == FRAGMENT_SOURCE:
            guarded = [s for g in GUARDED_SOURCES for s in sentences(g, {"tune", "test"})]
            before = len(rows)
            rows = drop_overlapping(rows, guarded)
            print(f"{name}: {before - len(rows)} fragments inside held-out sentences dropped")
            before = len(rows)
            rows = drop_unlabelled_abbreviations(rows, abbreviations)
            print(f"{name}: {before - len(rows)} fragments with unlabelled one-character names")
        domain = None
        if scheme is not None:
            domain = PD_DOMAIN if name in PD_LIKE else scheme.get(name, "o")
        data += [(s, weight, domain) for s in rows]
        print(f"{name}: {len(rows)} sentences x{weight}", flush=True)
    return data


@exit_on_data_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tune", action="store_true", help="train on train only, score tune")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--sources", default=DEFAULT_SOURCES, help="training corpora as name:copies (comma list)"
    )
    parser.add_argument("--c1", type=float, default=0.05)
    parser.add_argument("--c2", type=float, default=0.01)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--gaz-min-freq", type=int, default=1)
    parser.add_argument(
        "--no-words", dest="words", action="store_false", help="drop rjieba word/POS features"
    )
    parser.add_argument(
        "--augment", type=int, default=0, help="entity-replacement copies of People's Daily"
    )
    parser.add_argument("--jieba-share", type=float, default=0.5)
    parser.add_argument(
        "--no-extended",
        dest="extended",
        action="store_false",
        help="drop the 4-gram windows and name-cue distances",
    )
    parser.add_argument("--keep-crf", help="also keep the crfsuite model file here")
    parser.add_argument("--arrays-out", type=Path, help="also write the exported arrays here")
    parser.add_argument(
        "--domain-features",
        choices=sorted(DOMAIN_SCHEMES),
        help="EasyAdapt feature augmentation (shared + per-domain copies, People's Daily "
        "domain folded in at export): 'other' = one domain for all other corpora, "
        "'corpus' = one per corpus",
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    held: Split = "tune" if args.tune else "test"
    reports = [("peoples_daily", held), ("msra", held), ("weibo_dev", "test"), ("cluener", "test")]
    for name, split in reports:  # a missing or malformed file stops here, not after training
        sentences(name, {split})
    gazetteer = jieba_gazetteer(args.gaz_min_freq)
    extractor = FeatureExtractor(gazetteer, use_words=args.words, extended=args.extended)
    train_splits: set[Split] = {"train"} if args.tune else {"train", "tune"}
    scheme = DOMAIN_SCHEMES[args.domain_features] if args.domain_features else None
    pd_domain = PD_DOMAIN if scheme is not None else None
    # One-character name contexts of the annotated corpora: they filter the fragments and
    # are written beside the weights for OneCharNames.
    annotated = [s for g in GUARDED_SOURCES for s in sentences(g, train_splits)]
    abbreviations = abbreviation_contexts(annotated)
    data = training_data(args.sources, train_splits, scheme, abbreviations)
    if args.augment:
        pd_train = sentences("peoples_daily", train_splits)
        data += [(s, 1, pd_domain) for s in augment(pd_train, args.augment, args.jieba_share)]
    print(
        f"training sentences: {len(data)}, characters: {sum(len(s.text) * c for s, c, _ in data)}",
        flush=True,
    )
    features, transitions = train_crf(
        extractor, data, args.c1, args.c2, args.iterations, args.keep_crf, pd_domain
    )
    nonzero = sum(1 for v in features.values() if np.any(v))
    print(f"features: {len(features)} ({nonzero} non-zero), {time.perf_counter() - t0:.0f}s")
    arrays = model_arrays(extractor, features, transitions)
    filled = int(np.count_nonzero(arrays["slot_rows"]))
    print(
        f"table: {filled} of {arrays['slot_rows'].shape[0]} slots filled "
        f"({filled / arrays['slot_rows'].shape[0]:.3f}), {len(features) - filled} keys lost "
        "to collisions",
        flush=True,
    )
    if args.arrays_out:
        np.savez(args.arrays_out, **arrays)  # type: ignore[arg-type]
    tagger = ChineseEntityTagger.from_arrays(arrays, margin=6.0)
    one_char_names = one_char_names_file(abbreviations)
    tagger.one_char_names = OneCharNames.parse(one_char_names)

    for name, split in reports:
        result = score(tagger, sentences(name, {split}))
        print(f"{name}/{split}: " + " ".join(f"{k}={v:.4f}" for k, v in result.items()))
    if not args.tune:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out / WEIGHTS_FILE, **arrays)  # type: ignore[arg-type]
        (args.out / ONE_CHAR_NAMES_FILE).write_text(one_char_names, encoding="utf-8")
        loaded = EntityRecognizer.load(args.out)
        size = (args.out / WEIGHTS_FILE).stat().st_size
        print(f"wrote {args.out / WEIGHTS_FILE} ({size / 1e6:.1f} MB), version {loaded.version}")
    print(
        f"entities training took {time.perf_counter() - t0:.0f}s ({time.process_time():.0f}s CPU)",
        flush=True,
    )


if __name__ == "__main__":
    main()
