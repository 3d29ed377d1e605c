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
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# One thread for BLAS: the SVD and k-means then give the same clusters on every run.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.entities_en import (  # noqa: E402
    KINDS,
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
from evaluation.sentiment_en import HTML_BREAK, IMDB_FILE  # noqa: E402

DEFAULT_OUT = ROOT / "analyzers" / "models" / "entities_en"
WEIGHTS_FILE = "weights.npz"
WEIGHT_BITS = 19
FOLDS = 4
EXTRA_NAMES = DEFAULT_OUT / "extra_names.tsv"
FINE_CLUSTERS = 400
COARSE_CLUSTERS = 60


def token_labels(sentence: EnSentence, spans: Sequence[tuple[int, int]]) -> list[str]:
    labels = ["O"] * len(spans)
    for start, end, kind in sentence.spans:
        first = True
        for i, (s, e) in enumerate(spans):
            if s >= start and e <= end:
                labels[i] = f"{'B' if first else 'I'}-{kind}"
                first = False
    return labels


def gazetteer_of(
    sentences: Sequence[EnSentence], extra: dict[tuple[str, ...], int] | None = None
) -> TokenGazetteer:
    """Training mentions by type; ``extra`` names replace whatever types they had."""
    names: dict[tuple[str, ...], int] = {}
    for sentence in sentences:
        for start, end, kind in sentence.spans:
            words = tuple(sentence.text[s:e] for s, e in tokenize(sentence.text[start:end]))
            names[words] = names.get(words, 0) | (1 << KINDS.index(kind))
    names.update(extra or {})
    return TokenGazetteer.build(names)


def extra_names(path: Path = EXTRA_NAMES) -> dict[tuple[str, ...], int]:
    """The curated run-time gazetteer additions (``name<TAB>type`` lines)."""
    out: dict[tuple[str, ...], int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, kind = line.split("\t")
        words = tuple(name[s:e] for s, e in tokenize(name))
        out[words] = out.get(words, 0) | (1 << KINDS.index(kind.strip()))
    return out


def without_curated_clusters(
    clusters: dict[str, tuple[int, int]], extra: dict[tuple[str, ...], int]
) -> dict[str, tuple[int, int]]:
    """The run-time clusters less every case form of the single-token curated names.

    Their clusters come from IMDB reviews, where "Google" is mostly a verb or a website
    and clusters with words that start clauses: with it a sentence-initial "Google" read
    as O although the gazetteer listed it. A curated name is a name by curation; without
    a cluster it is an unknown capitalised word with a gazetteer hit, like "Tencent"."""
    dropped = {form for words in extra if len(words) == 1 for form in (words[0], words[0].lower())}
    dropped |= {w.capitalize() for w in dropped}
    return {w: c for w, c in clusters.items() if w not in dropped}


def featurise(
    features: EnglishFeatures, sentences: Sequence[EnSentence]
) -> list[tuple[list[list[str]], list[str]]]:
    """(feature keys per token as hex strings, labels) per sentence, in one batch."""
    spans = [tokenize(s.text) for s in sentences]
    tokens = features.layout([s.text for s in sentences], spans)
    columns = features.key_columns(tokens)
    keys = np.stack(columns, axis=1)
    out: list[tuple[list[list[str]], list[str]]] = []
    # Positions of each sentence's tokens (sentence breaks inside a row add sentinels).
    real = np.flatnonzero(tokens.owner >= 0)
    bounds = np.searchsorted(tokens.owner[real], np.arange(len(sentences) + 1))
    for i, (sentence, toks) in enumerate(zip(sentences, spans, strict=True)):
        rows = keys[real[bounds[i] : bounds[i + 1]]].tolist()
        assert len(rows) == len(toks)
        out.append(([[format(k, "x") for k in row] for row in rows], token_labels(sentence, toks)))
    return out


def build_clusters(
    texts: Sequence[str], fine_k: int, coarse_k: int, min_count: int = 5
) -> dict[str, tuple[int, int]]:
    """Distributional word clusters from unlabelled text (the CoNLL training sentences
    and IMDB reviews): each word of ``min_count``+ occurrences is described by counts of
    its left and right neighbours (lower-cased, the 3,000 most frequent), weighted by
    PPMI, reduced by SVD to 64 dimensions and grouped by k-means at two granularities.
    Words that behave alike (surnames, cities, companies, months) share a cluster, which
    tells the tagger about names it never saw labelled. Seeded, so deterministic."""
    import scipy.sparse as sp
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    counts: dict[str, int] = {}
    sequences: list[list[str]] = []
    for text in texts:
        words = [text[s:e] for s, e in tokenize(text)]
        sequences.append(words)
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    vocab = sorted(w for w, c in counts.items() if c >= min_count and any(ch.isalpha() for ch in w))
    index = {w: i for i, w in enumerate(vocab)}
    lower_counts: dict[str, int] = {}
    for w, c in counts.items():
        lower_counts[w.lower()] = lower_counts.get(w.lower(), 0) + c
    contexts = sorted(lower_counts, key=lambda w: (-lower_counts[w], w))[:3000]
    context_index = {w: i for i, w in enumerate(contexts)}
    n_ctx = len(contexts) + 1  # last column: any other word or a text edge
    rows: list[int] = []
    cols: list[int] = []
    for words in sequences:
        lowered = [w.lower() for w in words]
        for i, w in enumerate(words):
            r = index.get(w)
            if r is None:
                continue
            left = context_index.get(lowered[i - 1], n_ctx - 1) if i else n_ctx - 1
            right = (
                context_index.get(lowered[i + 1], n_ctx - 1) if i + 1 < len(words) else n_ctx - 1
            )
            rows += [r, r]
            cols += [left, n_ctx + right]
    m = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(vocab), 2 * n_ctx), dtype=np.float64
    )
    total = m.sum()
    row_sum = np.asarray(m.sum(axis=1)).ravel()
    col_sum = np.asarray(m.sum(axis=0)).ravel()
    coo = m.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * col_sum[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
    vectors = TruncatedSVD(64, random_state=0).fit_transform(ppmi)
    vectors = normalize(vectors)
    fine = KMeans(fine_k, n_init=1, max_iter=60, random_state=0).fit_predict(vectors)
    coarse = KMeans(coarse_k, n_init=1, max_iter=60, random_state=0).fit_predict(vectors)
    return {w: (int(f), int(c)) for w, f, c in zip(vocab, fine, coarse, strict=True)}


def unlabelled_texts(root: Path, train: Sequence[EnSentence]) -> list[str]:
    from evaluation.data import load_rows

    reviews = load_rows(root / IMDB_FILE, {"text": str})
    return [s.text for s in train] + [HTML_BREAK.sub(" ", r["text"]) for r in reviews]


def train_crf(
    train: list[EnSentence],
    c1: float,
    c2: float,
    iterations: int,
    folds: int,
    clusters: dict[str, tuple[int, int]] | None = None,
) -> tuple[dict[int, np.ndarray], np.ndarray, TokenGazetteer]:
    import pycrfsuite

    table = AtomTable(capacity=10_000_000, clusters=clusters)
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
    # The run-time gazetteer: every training mention plus the curated names (which the
    # CRF never saw as hits: its trust in a hit was learnt from the folds above).
    return weights, transitions, gazetteer_of(train, extra_names())


def model_arrays(
    weights: dict[int, np.ndarray],
    transitions: np.ndarray,
    gazetteer: TokenGazetteer,
    clusters: dict[str, tuple[int, int]] | None,
) -> dict[str, np.ndarray]:
    table = HashedWeights.build(weights, len(TAGS), WEIGHT_BITS)
    extra: dict[str, np.ndarray] = {}
    if clusters:
        words = sorted(clusters)
        extra["cluster_words"] = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
        extra["cluster_ids"] = np.array([clusters[w] for w in words], dtype=np.uint16)
    return {
        **extra,
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
    parser.add_argument("--c1", type=float, default=0.05)
    parser.add_argument("--c2", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--margin", type=float, default=6.0)
    parser.add_argument("--limit", type=int, default=0, help="subsample training (quick runs)")
    parser.add_argument("--fine", type=int, default=FINE_CLUSTERS, help="0: no word clusters")
    parser.add_argument("--coarse", type=int, default=COARSE_CLUSTERS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root: Path = args.data_dir or default_data_dir()
    splits: set[EnSplit] = {"train"} if args.tune else {"train", "tune"}
    train = train_sentences(root, splits)
    if args.limit:
        train = train[: args.limit]
    scored = train_sentences(root, {"tune"}) if args.tune else dev_sentences(root)
    print(f"entities_en: {len(train)} training sentences", flush=True)
    clusters = None
    if args.fine:
        clusters = build_clusters(unlabelled_texts(root, train), args.fine, args.coarse)
        print(
            f"entities_en: {len(clusters)} words clustered, {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    weights, transitions, gazetteer = train_crf(
        train, args.c1, args.c2, args.iterations, args.folds, clusters
    )
    runtime_clusters = without_curated_clusters(clusters, extra_names()) if clusters else None
    arrays = model_arrays(weights, transitions, gazetteer, runtime_clusters)
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
