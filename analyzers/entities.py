"""Named entities (PER / LOC / ORG) with character offsets into the original text.

Chinese (and mixed) text goes through a character-level BIO linear-chain CRF: hashed
n-gram, character-class and gazetteer features (``analyzers.ner_features``) scored by a
weight table trained by ``scripts/train_entities.py``, then constrained Viterbi over the
candidate regions only (``analyzers.viterbi``). Everything per batch is numpy; the only
per-entity Python work is building the result objects. English text goes through a
token-level CRF trained on CoNLL-2003 (``analyzers.entities_en``; a capitalisation
heuristic when its weights are absent); other languages get no entities.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analyzers import segmentation
from analyzers.entities_en import EnglishEntityTagger
from analyzers.ner_features import (
    GAZ_KINDS,
    NOT_NAME_FINAL,
    PAD,
    FeatureExtractor,
    Gazetteer,
    HashedWeights,
    WordOffsets,
    batch_codepoints,
    batch_word_codes,
    place_end,
)
from analyzers.viterbi import RegionViterbi
from schemas.results import Entity

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "entities"
WEIGHTS_FILE = "weights.npz"
# The English CRF (analyzers.entities_en) lives beside the Chinese model's folder.
EN_MODEL_DIRNAME = "entities_en"
# Curated organisation names beside the weights, added to the run-time gazetteer.
EXTRA_NAMES_FILE = "extra_names.tsv"

# One-character names by context, written by scripts/train_entities.py (OneCharNames).
ONE_CHAR_NAMES_FILE = "one_char_names.tsv"

# Characters featurised per numpy pass: bounds the temporary arrays (a few MB) while
# keeping per-call overhead small for batches of short texts.
_CHUNK_CHARS = 16_384
_Span = tuple[int, int, str]


def read_extra_names(text: str) -> list[tuple[str, int]]:
    """(name, gazetteer kind index) of each ``name<TAB>PER|LOC|ORG`` line; ``#`` comments."""
    out: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, kind = line.partition("\t")
        if not sep or kind.strip() not in GAZ_KINDS:
            raise ValueError(f"{EXTRA_NAMES_FILE} line {number}: want name<TAB>PER|LOC|ORG")
        out.append((name.strip(), GAZ_KINDS.index(kind.strip())))
    return out


class OneCharNames:
    """Single characters marked as names in the bigram they stand in: 中 and 美 in 中美,
    华 in 访华, 京 in 在京.

    People's Daily and MSRA mark 9% of their names that way; the tagger, which learnt
    mostly from text that marks none, finds few of them. ``scripts/train_entities.py``
    lists each (bigram, position of the name in it, kind) that those corpora mark as a
    one-character name at least twice and in 80%+ of its occurrences. A listed character
    becomes a name when neither it nor the other character of its bigram is part of a
    name the tagger found."""

    def __init__(self, contexts: Mapping[tuple[str, int], str]) -> None:
        by_bigram: dict[str, list[tuple[int, str]]] = {}
        for (bigram, at), kind in sorted(contexts.items()):
            by_bigram.setdefault(bigram, []).append((at, kind))
        self._by_bigram = by_bigram
        # Candidate starts: a listed first character before a listed second one (the
        # lookahead lets overlapping bigrams, 中美日, all be seen). An alternation of the
        # bigrams themselves cost 7x as much on long texts.
        firsts = re.escape("".join(sorted({b[0] for b in by_bigram})))
        seconds = re.escape("".join(sorted({b[1] for b in by_bigram})))
        self._pattern = re.compile(f"[{firsts}](?=[{seconds}])") if by_bigram else None

    @classmethod
    def parse(cls, text: str) -> OneCharNames:
        """From ``bigram<TAB>0|1<TAB>PER|LOC|ORG`` lines; ``#`` comments."""
        contexts: dict[tuple[str, int], str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 3 or len(fields[0]) != 2 or fields[1] not in ("0", "1"):
                raise ValueError(
                    f"{ONE_CHAR_NAMES_FILE} line {number}: want bigram<TAB>0|1<TAB>kind"
                )
            if fields[2] not in GAZ_KINDS:
                raise ValueError(f"{ONE_CHAR_NAMES_FILE} line {number}: want PER, LOC or ORG")
            contexts[fields[0], int(fields[1])] = fields[2]
        return cls(contexts)

    def add_to(self, text: str, spans: list[_Span]) -> list[_Span]:
        """``spans`` with the listed one-character names of ``text`` added, in order."""
        if self._pattern is None:
            return spans
        by_bigram = self._by_bigram
        hits = [
            (m.start(), listed)
            for m in self._pattern.finditer(text)
            if (listed := by_bigram.get(text[m.start() : m.start() + 2])) is not None
        ]
        if not hits:
            return spans
        taken = bytearray(len(text))
        for start, end, _ in spans:
            taken[start:end] = b"\x01" * (end - start)
        added: dict[int, str] = {}
        for pos, listed in hits:
            if taken[pos] or taken[pos + 1]:
                continue
            for at, kind in listed:
                added.setdefault(pos + at, kind)
        if not added:
            return spans
        return sorted([*spans, *((i, i + 1, kind) for i, kind in added.items())])


@dataclass(frozen=True, slots=True)
class _Piece:
    index: int  # which input text
    offset: int  # where the piece starts in it
    text: str


class ChineseEntityTagger:
    """Text -> (start, end, type) spans, batched."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        weights: HashedWeights,
        decoder: RegionViterbi,
    ) -> None:
        self.extractor = extractor
        self.weights = weights
        self.decoder = decoder
        # Trim a place glued to the ordinary words after it (ner_features.WordOffsets).
        self.unglue = True
        self.one_char_names: OneCharNames | None = None
        tags = decoder.tags
        self._begins = np.array([t[:1] in ("B", "S") for t in tags])
        self._inside = np.array([t != "O" for t in tags])
        self._continues = np.array([t[:1] in ("I", "E") for t in tags])
        self._kinds = [t.partition("-")[2] for t in tags]

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, npt.NDArray[np.generic]], margin: float
    ) -> ChineseEntityTagger:
        tags = [str(t) for t in arrays["tags"]]
        gazetteer = Gazetteer(
            kinds=arrays["gaz_kinds"].astype(np.uint8),
            fingerprints=arrays["gaz_fingerprints"].astype(np.uint16),
        )
        weights = HashedWeights(
            slot_rows=arrays["slot_rows"].astype(np.int32),
            slot_fingerprints=arrays["slot_fingerprints"].astype(np.uint16),
            rows=arrays["rows"].astype(np.float32),
        )
        decoder = RegionViterbi(
            tags=tags, transitions=arrays["transitions"].astype(np.float32), margin=margin
        )
        use_words = bool(arrays["use_words"]) if "use_words" in arrays else False
        extended = bool(arrays["extended"]) if "extended" in arrays else False
        return cls(FeatureExtractor(gazetteer, use_words, extended), weights, decoder)

    def add_names(self, entries: Sequence[tuple[str, int]]) -> None:
        """List curated names in the run-time gazetteer (see ``read_extra_names``)."""
        extractor = self.extractor
        self.extractor = FeatureExtractor(
            extractor.gazetteer.with_names(entries), extractor.use_words, extractor.extended
        )

    def spans_batch(self, texts: Sequence[str]) -> list[list[_Span]]:
        out: list[list[_Span]] = [[] for _ in texts]
        pieces = [_Piece(i, 0, t) for i, t in enumerate(texts) if t]
        chunk: list[_Piece] = []
        size = 0
        for piece in _split_long(pieces):
            if chunk and size + len(piece.text) > _CHUNK_CHARS:
                self._tag_chunk(chunk, out)
                chunk, size = [], 0
            chunk.append(piece)
            size += len(piece.text) + PAD
        if chunk:
            self._tag_chunk(chunk, out)
        if self.one_char_names is not None:
            add_to = self.one_char_names.add_to
            out = [add_to(text, spans) for text, spans in zip(texts, out, strict=True)]
        return out

    def _tag_chunk(self, chunk: list[_Piece], out: list[list[_Span]]) -> None:
        codes, starts = batch_codepoints([p.text for p in chunk])
        words = None
        if self.extractor.use_words:
            words = batch_word_codes(segmentation.tag(p.text) for p in chunk)
        emissions = self.weights.emissions(self.extractor.key_columns(codes, words))
        boundary = codes == 0
        boundary[:PAD] = True
        tags = self.decoder.decode(emissions, boundary)
        begin = np.flatnonzero(self._begins[tags])
        if begin.size == 0:
            return
        # An entity ends where the next tag does not continue it (BIO and BIOES alike).
        continued = np.zeros(tags.shape[0], dtype=bool)
        continued[:-1] = self._continues[tags[1:]]
        end = np.flatnonzero(self._inside[tags] & ~continued) + 1
        owner = np.searchsorted(starts, begin, side="right") - 1
        local = begin - starts[owner]
        kinds = self._kinds
        offsets_of: dict[int, WordOffsets] = {}
        for b, e, p, s in zip(
            begin.tolist(), end.tolist(), owner.tolist(), local.tolist(), strict=True
        ):
            piece = chunk[p]
            stop, kind = s + (e - b), kinds[int(tags[b])]
            if self.unglue and kind == "PER" and stop - s >= 3:
                if piece.text[stop - 1] in NOT_NAME_FINAL:
                    stop -= 1
            elif self.unglue and stop - s >= 3:
                offsets = offsets_of.get(p)
                if offsets is None:
                    offsets = offsets_of[p] = WordOffsets(segmentation.tag(piece.text))
                cut = offsets.unglued_end(piece.text, s, stop)
                if cut is not None:
                    stop, kind = cut, "LOC"
            if self.unglue and kind == "LOC":
                stop = place_end(piece.text, s, stop)
            out[piece.index].append((piece.offset + s, piece.offset + stop, kind))


def _split_long(pieces: list[_Piece]) -> list[_Piece]:
    """Texts longer than a chunk are tagged in chunk-sized pieces (cut at a newline or
    sentence end where one is near, so that few entities are split)."""
    out: list[_Piece] = []
    for piece in pieces:
        text, offset = piece.text, 0
        while len(text) - offset > _CHUNK_CHARS:
            window = text[offset : offset + _CHUNK_CHARS]
            cut = max(window.rfind("\n"), window.rfind("。"))
            cut = cut + 1 if cut > _CHUNK_CHARS // 2 else _CHUNK_CHARS
            out.append(_Piece(piece.index, offset, window[:cut]))
            offset += cut
        out.append(_Piece(piece.index, offset, text[offset:]))
    return out


# English: runs of capitalised words, typed by small cue lists. A heuristic (no English
# training data ships with the project): precise on news-style names, blind to lower-case
# mentions, and a single capitalised word is only kept when a cue types it. A run is at
# most _EN_MAX_WORDS words: longer ones are title-case headlines or hostile input
# ("John Smith " x 10k was one 100k-character entity).
_EN_MAX_WORDS = 10
_EN_NAME = re.compile(
    r"(?:[A-Z][a-z]+(?:['’][A-Za-z]+)?|[A-Z]{2,}|[A-Z]\.)"
    r"(?:[ -](?:(?:of|the|for|and|de|van|von|der|la|du)[ ])?"
    rf"(?:[A-Z][a-z]+(?:['’][A-Za-z]+)?|[A-Z]{{2,}}|[A-Z]\.)){{0,{_EN_MAX_WORDS - 1}}}"
)
# A person cue ends at most this far before the name (it is searched only there, not in
# the whole text before every name, which was quadratic in the number of names).
_EN_CUE_WINDOW = 64
_EN_ORG_WORDS = frozenset(
    "Inc Inc. Corp Corp. Corporation Company Co Co. Ltd Ltd. LLC Group Bank University "
    "College Institute School Association Agency Ministry Department Council Committee "
    "Commission Party Foundation Federation Union Club Airlines Motors Technologies Times "
    "News Press Post Journal Reuters Congress Senate Parliament Court Police Army Navy Federal "
    "Reserve Fund Organization Organisation Nations Office Bureau Service Board Authority "
    "Exchange Hospital Museum Church "
    "Microsoft Google Apple Amazon Facebook Meta Tesla Toyota Samsung Huawei Alibaba Tencent "
    "IBM Intel Nvidia Netflix Twitter Boeing Airbus OpenAI".split()
)
_EN_LOC_WORDS = frozenset(
    "China Beijing Shanghai Shenzhen Guangzhou Hong Kong Taiwan Japan Tokyo Korea Seoul India "
    "America USA US U.S. UK U.K. Britain England London France Paris Germany Berlin Italy Rome "
    "Spain Madrid Russia Moscow Canada Toronto Australia Sydney Brazil Mexico Europe Asia "
    "Africa Washington California Texas Florida York Chicago Boston Singapore Vietnam "
    "Thailand Indonesia Israel Iran Iraq Egypt Ukraine Kingdom States City River Lake Mountain "
    "Mountains Island Islands Street Avenue County Province State Valley Sea Ocean Bay".split()
)
_EN_PERSON_CUES = re.compile(r"(?:Mr|Mrs|Ms|Dr|Prof|President|Sir|Madam|Senator)\.?\s+$")
_EN_NOT_NAMES = frozenset(
    "I A The This That These Those It He She We They You My Our Your His Her Their There "
    "Here When Where What Why How If But And Or So Yes No Not In On At For From With By To "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April "
    "May June July August September October November December Mr Mrs Ms Dr".split()
)


def english_entities(text: str) -> list[_Span]:
    """PER / LOC / ORG spans in English text (capitalisation heuristic)."""
    spans: list[_Span] = []
    for match in _EN_NAME.finditer(text):
        start, end = match.span()
        words = match.group().split()
        skip = 0
        while skip < len(words) and words[skip] in _EN_NOT_NAMES:
            start += len(words[skip]) + 1
            skip += 1
        if skip == len(words):
            continue
        words = words[skip:]
        if any(w in _EN_ORG_WORDS for w in words) or (
            len(words) == 1 and words[0].isupper() and len(words[0]) > 2
        ):
            kind = "ORG"
        elif words[-1] in _EN_LOC_WORDS or (len(words) <= 2 and words[0] in _EN_LOC_WORDS):
            kind = "LOC"
        elif len(words) >= 2 or _EN_PERSON_CUES.search(text, max(0, start - _EN_CUE_WINDOW), start):
            kind = "PER"
        else:
            continue
        spans.append((start, end, kind))
    return spans


class EntityRecognizer:
    """The ``entities`` analysis stage."""

    name = "entities"

    def __init__(
        self,
        tagger: ChineseEntityTagger,
        version: str,
        english: EnglishEntityTagger | None = None,
    ) -> None:
        self.tagger = tagger
        self.version = version
        self.english = english

    @classmethod
    def load(cls, model_dir: Path | None = None, *, margin: float = 6.0) -> EntityRecognizer:
        """The committed model (or the one in ``model_dir``); no network, numpy only."""
        path = (model_dir or DEFAULT_MODEL_DIR) / WEIGHTS_FILE
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()[:12]
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        tagger = ChineseEntityTagger.from_arrays(arrays, margin)
        names_path = path.parent / EXTRA_NAMES_FILE
        if names_path.is_file():
            names_raw = names_path.read_bytes()
            tagger.add_names(read_extra_names(names_raw.decode("utf-8")))
            raw += names_raw
            digest = hashlib.sha256(raw).hexdigest()[:12]
        one_char_path = path.parent / ONE_CHAR_NAMES_FILE
        if one_char_path.is_file():
            one_char_raw = one_char_path.read_bytes()
            tagger.one_char_names = OneCharNames.parse(one_char_raw.decode("utf-8"))
            digest = hashlib.sha256(raw + one_char_raw).hexdigest()[:12]
        version = f"crf-{digest}"
        # Without English weights (an old model folder) English falls back to the heuristic.
        en_path = path.parent.parent / EN_MODEL_DIRNAME / WEIGHTS_FILE
        english = None
        if en_path.is_file():
            en_raw = en_path.read_bytes()
            with np.load(en_path, allow_pickle=False) as data:
                english = EnglishEntityTagger.from_arrays({k: data[k] for k in data.files})
            version += "+en-" + hashlib.sha256(en_raw).hexdigest()[:8]
        return cls(tagger, version, english)

    def analyze_batch(self, texts: Sequence[str], languages: Sequence[str]) -> list[list[Entity]]:
        if len(texts) != len(languages):
            raise ValueError("texts and languages differ in length")
        zh_index = [i for i, lang in enumerate(languages) if lang in ("zh", "mixed")]
        results: list[list[Entity]] = [[] for _ in texts]
        zh_spans = self.tagger.spans_batch([texts[i] for i in zh_index])
        for i, spans in zip(zh_index, zh_spans, strict=True):
            text = texts[i]
            results[i] = [Entity(text=text[s:e], type=kind, start=s, end=e) for s, e, kind in spans]
        en_index = [i for i, lang in enumerate(languages) if lang == "en"]
        if self.english is not None:
            en_spans = self.english.spans_batch([texts[i] for i in en_index])
        else:
            en_spans = [english_entities(texts[i]) for i in en_index]
        for i, spans in zip(en_index, en_spans, strict=True):
            text = texts[i]
            results[i] = [Entity(text=text[s:e], type=kind, start=s, end=e) for s, e, kind in spans]
        return results
