"""Loading and batched inference shared by the Hugging Face transformers analyzers.

Everything that touches torch lives here: resolving the device, loading a model and its
fast tokenizer from a local directory or the local hub cache, and running encoded
sequences through the model in micro-batches.

Micro-batches are bounded by a token budget (rows x the longest row, the padded shape the
model computes), not only by a count, and built per length bucket: sequences are sorted
by length, longest first, and a batch never mixes buckets (lengths in (2^(k-1), 2^k]), so
real traffic (mostly short texts, a few long ones) never pads a 20-token text to 256 and
padding stays under half of any batch. Results come back in the caller's order.

On a GPU the CPU work of the next micro-batch (padding into arrays, pinned-memory copy
started without blocking) is done while the device still runs the current one: results
are read back only after the next batch is queued. A call with many texts is taken in
chunks, the next chunk tokenised in a thread (the tokenizers library releases the GIL)
while this one runs through the model (:class:`ChunkPrefetch`).

Precision ``auto`` (the default) runs bf16 where the device does it natively and fp32
elsewhere: with native bf16 the model-stage benchmark measured 2-4x the fp32 rate for
micro-batches and never less at batch 1. bf16 casts the weights to bfloat16 once at load
time rather than running under autocast:
autocast re-casts every weight matrix on every forward pass, which on a CPU made batch-1
BERT-base slower than plain fp32 (bench/model_stage.py measures both precisions).

Import this module (and the analyzers built on it) only when the transformers backend is
configured: importing torch costs seconds and hundreds of MB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from analyzers.config import TransformersConfig
from schemas.errors import ConfigurationError

logger = logging.getLogger(__name__)

_TRUTHY = frozenset({"1", "true", "yes", "on"})

# Turns the model's logits for one batch (batch, ...) into the numpy array kept per row.
BatchHead = Callable[[torch.Tensor], torch.Tensor]
Prepared = TypeVar("Prepared")
Output = TypeVar("Output")


def resolve_device(spec: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` (also ``mps``), checked against this machine."""
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise ConfigurationError(f"invalid torch device {spec!r}: {exc}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device {spec!r} requested but CUDA is not available on this machine "
                "(use device='cpu' or install a CUDA build of torch)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigurationError(
                f"device {spec!r} requested but only {count} CUDA device(s) are visible"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigurationError(f"device {spec!r} requested but MPS is not available")
    elif device.type != "cpu":
        raise ConfigurationError(f"unsupported device {spec!r}: use cpu, cuda or cuda:N")
    return device


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively here (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            # oneDNN reports native bf16 on CPUs with AVX512-BF16 or AMX.
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model comes from: a local directory, or a hub id read from the local cache."""

    reference: str
    local_dir: Path | None

    @property
    def local_files_only(self) -> bool:
        return self.local_dir is not None or hub_offline()

    @property
    def display_name(self) -> str:
        # The directory name, not the full path, so workers that mount the same model at
        # different paths agree on the version (and so share deduplicated results). A
        # symlink is followed: "current -> v2" is named v2, so a reload after the link
        # moves names the new model.
        if self.local_dir is None:
            return self.reference
        return self.local_dir.resolve().name


def locate_model(reference: str) -> ModelSource:
    path = Path(reference).expanduser()
    if path.is_dir():
        return ModelSource(reference=str(path), local_dir=path)
    if reference.startswith(("/", "./", "../", "~")) or path.exists():
        raise ConfigurationError(f"model directory {reference!r} does not exist")
    return ModelSource(reference=reference, local_dir=None)


# Files of a model directory that change what it computes: weights, configuration and
# tokenizer. Hashed whole: a fine-tune written over the old one in place (same directory,
# same config.json) must still change the version, or deduplicated results of the old
# model would be reused for the new one.
_MODEL_FILE_SUFFIXES = frozenset({".json", ".safetensors", ".bin", ".txt", ".model"})


def _local_dir_digest(directory: Path) -> str | None:
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES
    )
    if not any(p.name == "config.json" for p in files):
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:12]


def _model_digest(source: ModelSource, model: PreTrainedModel) -> str:
    raw: bytes | None = None
    if source.local_dir is not None:
        whole = _local_dir_digest(source.local_dir)
        if whole is not None:
            return whole
    else:
        try:
            from transformers.utils.hub import cached_file

            found = cached_file(source.reference, "config.json", local_files_only=True)
            if found is not None:
                raw = Path(found).read_bytes()
        except (OSError, ValueError):
            raw = None
    if raw is None:
        # No file to hash: hash the loaded config without the library version, which
        # would otherwise change the analyzer version on every transformers upgrade.
        as_dict = model.config.to_dict()
        as_dict.pop("transformers_version", None)
        raw = json.dumps(as_dict, sort_keys=True).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    device: torch.device
    version: str
    max_length: int
    bf16: bool

    @property
    def id2label(self) -> dict[int, str]:
        labels = self.model.config.id2label or {}
        return {int(k): str(v) for k, v in labels.items()}


def load_model(
    config: TransformersConfig,
    model_class: Any,
    *,
    require_fast_tokenizer: bool = False,
) -> LoadedModel:
    """Load tokenizer and ``model_class`` (an ``AutoModelFor...``) for inference.

    Raises ConfigurationError for bad settings, a missing model, a missing device.
    """
    if config.precision not in ("auto", "fp32", "bf16"):
        raise ConfigurationError(f"precision must be auto, fp32 or bf16, got {config.precision!r}")
    if config.batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {config.batch_size}")
    if config.max_length < 4:
        raise ConfigurationError(f"max_length must be >= 4, got {config.max_length}")
    if config.batch_tokens < config.max_length:
        raise ConfigurationError(
            f"batch_tokens ({config.batch_tokens}) must be at least max_length "
            f"({config.max_length}): a text of max_length tokens must fit a batch"
        )
    if config.num_threads is not None:
        if config.num_threads < 1:
            raise ConfigurationError(f"num_threads must be >= 1, got {config.num_threads}")
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    source = locate_model(config.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.reference, local_files_only=source.local_files_only
        )
        model = model_class.from_pretrained(
            source.reference, local_files_only=source.local_files_only
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigurationError(
            f"cannot load transformers model {config.model!r}"
            f"{' (local files only)' if source.local_files_only else ''}: {exc}"
        ) from exc
    if require_fast_tokenizer and not getattr(tokenizer, "is_fast", False):
        raise ConfigurationError(
            f"model {config.model!r} has no fast tokenizer (tokenizer.json): "
            "character offsets need one"
        )
    model.eval()
    model.requires_grad_(False)
    use_bf16 = config.precision != "fp32" and bf16_supported(device)
    if config.precision == "bf16" and not use_bf16:
        logger.warning("bf16 requested but not supported natively on %s: running fp32", device)
    model.to(device=device, dtype=torch.bfloat16 if use_bf16 else torch.float32)

    max_length = config.max_length
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve two positions for the padding offset.
        roberta_like = model.config.model_type in {"roberta", "xlm-roberta"}
        usable = positions - 2 if roberta_like else positions
        max_length = min(max_length, usable)

    version = f"{source.display_name}@{_model_digest(source, model)}"
    if use_bf16:
        version += "+bf16"
    return LoadedModel(
        tokenizer=tokenizer,
        model=model,
        device=device,
        version=version,
        max_length=max_length,
        bf16=use_bf16,
    )


# Buckets are lengths in (2^(k-1), 2^k]: a batch's rows are all longer than half its
# width, so padding stays under this share of its cells.
MAX_PADDING_SHARE = 0.5
MIN_BUCKET = 8


def length_bucket(length: int) -> int:
    """The upper bound of ``length``'s bucket: the power of two at or above it."""
    return max(MIN_BUCKET, 1 << max(0, length - 1).bit_length())


def micro_batches(
    order: Sequence[int], lengths: Sequence[int], size: int, token_budget: int
) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (longest first) within one length bucket, of at most
    ``size`` sequences and at most ``token_budget`` padded tokens (rows x the run's first,
    longest, length). A sequence longer than the budget goes alone."""
    batch: list[int] = []
    longest = bucket = 0
    for index in order:
        length = lengths[index]
        if batch and (
            len(batch) >= size
            or (len(batch) + 1) * longest > token_budget
            or length_bucket(length) != bucket
        ):
            yield batch
            batch = []
        if not batch:
            longest, bucket = length, length_bucket(length)
        batch.append(index)
    if batch:
        yield batch


def warmup_shapes(max_length: int, size: int, token_budget: int) -> list[tuple[int, int]]:
    """(rows, width) of the dummy batches run before a process says it is ready: for each
    bucket, one row and the fullest batch the budget allows. The first pass of each shape
    pays for allocation and kernel choice (several times a steady batch on a GPU)."""
    shapes: list[tuple[int, int]] = []
    width = MIN_BUCKET
    while True:
        width = min(width, max_length)
        full = max(1, min(size, token_budget // width))
        shapes.append((1, width))
        if full > 1:
            shapes.append((full, width))
        if width >= max_length:
            return shapes
        width *= 2


class BatchedForward:
    """Runs token-id sequences through a model in length-bucketed micro-batches."""

    def __init__(self, loaded: LoadedModel, batch_size: int, token_budget: int) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        self.token_budget = token_budget
        tokenizer = loaded.tokenizer
        pad_id = tokenizer.pad_token_id
        self._pad_id = int(pad_id) if pad_id is not None else 0
        self._wants_token_types = "token_type_ids" in tokenizer.model_input_names
        # Pinned host memory lets the copy to the GPU run without blocking this thread.
        self._pin = loaded.device.type == "cuda"

    def _to_device(self, array: npt.NDArray[np.int64]) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self._pin:
            return tensor.pin_memory().to(self.loaded.device, non_blocking=True)
        return tensor.to(self.loaded.device)

    def _inputs(self, rows: list[Sequence[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        inputs = {"input_ids": self._to_device(ids), "attention_mask": self._to_device(mask)}
        if self._wants_token_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        return inputs

    def run(self, sequences: Sequence[Sequence[int]], head: BatchHead) -> list[npt.NDArray[Any]]:
        """``head(logits)`` of each sequence, in input order.

        For per-token heads a row is cut back to its sequence's own length.
        """
        results: list[npt.NDArray[Any]] = [np.empty(0)] * len(sequences)
        if not sequences:
            return results
        lengths = [len(s) for s in sequences]
        order = sorted(range(len(sequences)), key=lengths.__getitem__, reverse=True)
        model = self.loaded.model
        # The batch whose forward pass is queued and whose results are not read yet.
        queued: tuple[list[int], torch.Tensor, bool] | None = None

        def collect(batch: list[int], values_t: torch.Tensor, per_token: bool) -> None:
            values = values_t.cpu().numpy()  # waits for the device
            for row_index, seq_index in enumerate(batch):
                value = values[row_index]
                if per_token and value.ndim >= 1:
                    value = value[: lengths[seq_index]]
                results[seq_index] = value

        with torch.inference_mode():
            for batch in micro_batches(order, lengths, self.batch_size, self.token_budget):
                # Built while the device may still run the previous batch.
                inputs = self._inputs([sequences[i] for i in batch])
                if queued is not None:
                    collect(*queued)
                logits = model(**inputs).logits
                queued = (batch, head(logits.float()), logits.ndim == 3)
            if queued is not None:
                collect(*queued)
        return results

    def warm_up(self, head: BatchHead) -> None:
        """Run dummy batches of every bucket's shapes (see :func:`warmup_shapes`)."""
        filler = self._pad_id + 1 if self._pad_id == 0 else 0
        size = self.batch_size
        if self.loaded.device.type == "cpu":
            # A CPU has no kernel tuning to pay for; a big dummy batch of a big model
            # would only add seconds to every start.
            size = min(size, 4)
        for rows, width in warmup_shapes(self.loaded.max_length, size, self.token_budget):
            self.run([[filler] * width for _ in range(rows)], head)
        if self.loaded.device.type == "cuda":
            torch.cuda.synchronize(self.loaded.device)


class ChunkPrefetch:
    """Runs a call's texts in chunks of ``chunk`` texts: ``prepare`` (tokenising) of the
    next chunk in a thread while ``finish`` (the model, decoding) works on this one.

    A call of at most ``chunk`` texts (the usual pool batch on a CPU) is done in place,
    with no thread. Each chunk is batched by length on its own, so a chunk is several
    micro-batches long."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self._executor: ThreadPoolExecutor | None = None

    def map(
        self,
        texts: Sequence[str],
        prepare: Callable[[Sequence[str]], Prepared],
        finish: Callable[[Sequence[str], Prepared], list[Output]],
    ) -> list[Output]:
        if len(texts) <= self.chunk:
            return finish(texts, prepare(texts))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tokenise-ahead")
        chunks = [texts[i : i + self.chunk] for i in range(0, len(texts), self.chunk)]
        out: list[Output] = []
        pending: Future[Prepared] = self._executor.submit(prepare, chunks[0])
        for index, chunk in enumerate(chunks):
            prepared = pending.result()
            if index + 1 < len(chunks):
                pending = self._executor.submit(prepare, chunks[index + 1])
            out.extend(finish(chunk, prepared))
        return out


def prefetch_chunk(batch_size: int) -> int:
    """Texts per chunk: several full micro-batches, so chunking costs little batching."""
    return max(256, 4 * batch_size)
