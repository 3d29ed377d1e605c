"""Loading and batched inference shared by the Hugging Face transformers analyzers.

Everything that touches torch lives here: resolving the device, loading a model and its
fast tokenizer from a local directory or the local hub cache, and running encoded
sequences through the model in micro-batches. Sequences are sorted by length, longest
first, and a micro-batch is closed early when padding would make up more than half of
it: real traffic is mostly short texts with a few long ones, and one 256-token text in a
batch of 20-token texts would otherwise multiply that batch's work by ten. Results come
back in the caller's order.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        # different paths agree on the version (and so share deduplicated results).
        return self.local_dir.name if self.local_dir is not None else self.reference


def locate_model(reference: str) -> ModelSource:
    path = Path(reference).expanduser()
    if path.is_dir():
        return ModelSource(reference=str(path), local_dir=path)
    if reference.startswith(("/", "./", "../", "~")) or path.exists():
        raise ConfigurationError(f"model directory {reference!r} does not exist")
    return ModelSource(reference=reference, local_dir=None)


def _config_json_digest(source: ModelSource, model: PreTrainedModel) -> str:
    raw: bytes | None = None
    if source.local_dir is not None:
        config_path = source.local_dir / "config.json"
        if config_path.is_file():
            raw = config_path.read_bytes()
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

    version = f"{source.display_name}@{_config_json_digest(source, model)}"
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


# A micro-batch is cut before padding exceeds this share of its cells.
MAX_PADDING_SHARE = 0.5


def micro_batches(order: Sequence[int], lengths: Sequence[int], size: int) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (longest first) of at most ``size`` sequences whose
    padding to the run's first (longest) sequence stays under MAX_PADDING_SHARE."""
    batch: list[int] = []
    longest = real = 0
    for index in order:
        length = lengths[index]
        if batch and (
            len(batch) >= size
            or (len(batch) + 1) * longest * (1.0 - MAX_PADDING_SHARE) > real + length
        ):
            yield batch
            batch = []
        if not batch:
            longest, real = length, 0
        batch.append(index)
        real += length
    if batch:
        yield batch


class BatchedForward:
    """Runs token-id sequences through a model in length-sorted micro-batches."""

    def __init__(self, loaded: LoadedModel, batch_size: int) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        tokenizer = loaded.tokenizer
        pad_id = tokenizer.pad_token_id
        self._pad_id = int(pad_id) if pad_id is not None else 0
        self._wants_token_types = "token_type_ids" in tokenizer.model_input_names

    def _inputs(self, rows: list[Sequence[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        device = self.loaded.device
        inputs = {
            "input_ids": torch.from_numpy(ids).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
        }
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
        # Longest first: similar lengths share a batch, so little compute goes to padding.
        lengths = [len(s) for s in sequences]
        order = sorted(range(len(sequences)), key=lengths.__getitem__, reverse=True)
        model = self.loaded.model
        with torch.inference_mode():
            for batch in micro_batches(order, lengths, self.batch_size):
                rows = [sequences[i] for i in batch]
                logits = model(**self._inputs(rows)).logits
                values = head(logits.float()).cpu().numpy()
                for row_index, seq_index in enumerate(batch):
                    value = values[row_index]
                    if value.ndim >= 1 and logits.ndim == 3:
                        value = value[: len(sequences[seq_index])]
                    results[seq_index] = value
        return results
