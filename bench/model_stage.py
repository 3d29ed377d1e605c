"""Throughput of the transformers stages: batch 1 vs micro-batches, fp32 vs bf16.

    python bench/model_stage.py [--quick] [--device cpu|cuda|cuda:N] [--threads N]
        [--peak-tflops T] [--decode-bench-only]

Builds two random-weight BERT models locally (cached under --models-dir, default
~/.cache/contentstream/bench-models): ``small`` (2 layers, hidden 128) and ``base``
(BERT-base size: 12 layers, hidden 768, ~21k character vocabulary like bert-base-chinese).
Random weights cost exactly what trained ones do. Documents are a fixed random sample of
corpus/zh_mixed.jsonl under CONTENTSTREAM_DATA_DIR (default ../shared/data beside the
repo), or synthetic Chinese text of the same length profile when the data is absent.

Every variant (batch size x precision) of a model is timed in the same process, in
interleaved rounds, and the best round is kept, so the ratios compare like with like even
on a busy machine. Each variant runs the real analyzer (tokenisation, forward passes,
result objects) over the documents in stream-sized calls of --call-size texts.

Each analyzer is warmed up as a worker's analyzer process does before it says it is ready
(``warm_up()``: dummy batches of every length bucket); the warm-up time is reported, and
the first timed round against the steady state (best later round) is what a worker pays
after a restart. Rates are also given in tokens/s (real tokens, not padding) and as a
fraction of the device's peak: FLOPs ~= 2 x non-embedding parameters x tokens, against
``--peak-tflops`` (defaults per device below; a CPU's is estimated from its cores).

The decode micro-benchmark times entity decoding alone on the small entities model, the
vectorised decoder against the per-token one it replaced (tests/analyzers/
reference_entity_decoder.py), on the same tokenised documents and predicted tags.

On one GPU (issue 20's targets: random-weight BERT-base, bf16, sentiment >= 30,000
docs/s, entities >= 0.6x sentiment, first round >= 0.8x steady), one run of a few minutes:

    python bench/model_stage.py --device cuda --sizes base --precisions bf16 \
        --batch-size 512 --batch-tokens 65536 --call-size 4096 --base-docs 20000 \
        --rounds 3 --no-decode-bench --skip-batch-1

Prints a markdown table and writes JSON to bench/results/model_stage.json.
Targets: micro-batched >= 1.5x batch 1 on the small model (CPU); bf16 used where it is
faster; on a GPU, micro-batched BERT-base >= 10x batch 1; entity decoding >= 3x the
per-token decoder; first round >= 0.8x steady state after the warm-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import torch  # noqa: E402
from build_tiny_models import build_pair  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "analyzers"))
import reference_entity_decoder  # noqa: E402

from analyzers.config import TransformersConfig  # noqa: E402
from analyzers.transformers_entities import (  # noqa: E402
    TransformersEntityRecognizer,
    decode_batch,
    tagged_windows,
)
from analyzers.transformers_runtime import bf16_supported, resolve_device  # noqa: E402
from analyzers.transformers_sentiment import TransformersSentimentAnalyzer  # noqa: E402

ANALYZERS: dict[str, Any] = {
    "sentiment": TransformersSentimentAnalyzer,
    "entities": TransformersEntityRecognizer,
}


# Dense peak TFLOP/s by device name (bf16 tensor cores; fp32 without TF32), vendor
# figures for the SXM parts. Override with --peak-tflops.
GPU_PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 67.0),
    "H100": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L40S": (362.0, 91.6),
    "L4": (121.0, 30.3),
    "A10": (125.0, 31.2),
}
# A CPU core: 2 AVX-512 FMA units x 16 fp32 lanes x 2 FLOPs at ~2.5 GHz (bf16 with AMX
# is far higher, but only where oneDNN uses it).
CPU_CORE_PEAK_TFLOPS = 0.16


def peak_tflops(device: torch.device, precision: str, threads: int) -> float:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (bf16, fp32) in GPU_PEAK_TFLOPS.items():
            if key in name:
                return bf16 if precision == "bf16" else fp32
        return 100.0 if precision == "bf16" else 20.0
    return CPU_CORE_PEAK_TFLOPS * threads


def non_embedding_params(model: Any) -> int:
    embedded = sum(
        p.numel() for name, p in model.named_parameters() if "embeddings" in name.split(".")
    )
    return sum(p.numel() for p in model.parameters()) - embedded


def real_tokens(analyzer: Any, docs: Sequence[str]) -> int:
    """Tokens the model runs on for ``docs`` (special tokens in, padding out)."""
    loaded = analyzer.loaded
    if isinstance(analyzer, TransformersEntityRecognizer):
        encoded = loaded.tokenizer(
            list(docs),
            truncation=True,
            max_length=loaded.max_length,
            stride=analyzer._stride,
            return_overflowing_tokens=True,
        )
    else:
        encoded = loaded.tokenizer(list(docs), truncation=True, max_length=loaded.max_length)
    return sum(len(ids) for ids in encoded["input_ids"])


@dataclass
class VariantResult:
    batch_size: int
    precision: str
    docs: int
    tokens: int = 0
    gflop_per_round: float = 0.0
    warmup_s: float = 0.0
    rounds_docs_per_s: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return max(self.rounds_docs_per_s) if self.rounds_docs_per_s else 0.0

    @property
    def first_vs_steady(self) -> float | None:
        """The first timed round (right after the warm-up) against the best later one."""
        if len(self.rounds_docs_per_s) < 2:
            return None
        return round(self.rounds_docs_per_s[0] / max(self.rounds_docs_per_s[1:]), 2)

    @property
    def tokens_per_s(self) -> float:
        return round(self.best * self.tokens / self.docs, 1) if self.docs else 0.0


@dataclass
class Measurement:
    size: str
    task: str
    docs: int
    mean_chars: float
    variants: dict[str, VariantResult]

    def rate(self, batch: int, precision: str) -> float | None:
        found = self.variants.get(f"b{batch}-{precision}")
        return found.best if found else None


def data_dir() -> Path:
    configured = os.environ.get("CONTENTSTREAM_DATA_DIR")
    return Path(configured) if configured else ROOT.parent / "shared" / "data"


def load_documents(count: int, seed: int = 0) -> tuple[list[str], str]:
    corpus = data_dir() / "corpus" / "zh_mixed.jsonl"
    rng = random.Random(seed)
    if corpus.is_file():
        with corpus.open(encoding="utf-8") as handle:
            texts = [json.loads(line)["text"] for line in handle if line.strip()]
        return rng.sample(texts, min(count, len(texts))), str(corpus)
    # Synthetic: common Han characters with zh_mixed's skew (median ~25, some long).
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)] + list("，。！？ ")
    docs = []
    for _ in range(count):
        length = min(2000, max(4, int(rng.lognormvariate(3.3, 0.9))))
        docs.append("".join(rng.choice(alphabet) for _ in range(length)))
    return docs, "synthetic"


def run_variant(analyzer: Any, docs: Sequence[str], call_size: int) -> float:
    started = time.perf_counter()
    for begin in range(0, len(docs), call_size):
        chunk = docs[begin : begin + call_size]
        analyzer.analyze_batch(chunk, ["zh"] * len(chunk))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(docs) / (time.perf_counter() - started)


def measure(
    size: str,
    task: str,
    model_dir: Path,
    docs: Sequence[str],
    *,
    device: str,
    threads: int,
    batch_sizes: Sequence[int],
    precisions: Sequence[str],
    rounds: int,
    call_size: int,
    max_length: int,
    batch_tokens: int,
) -> Measurement:
    analyzers: dict[str, Any] = {}
    results: dict[str, VariantResult] = {}
    tokens = 0
    for precision in precisions:
        for batch in batch_sizes:
            key = f"b{batch}-{precision}"
            config = TransformersConfig(
                model=str(model_dir),
                device=device,
                batch_size=batch,
                max_length=max_length,
                batch_tokens=max(batch_tokens, max_length),
                num_threads=threads,
                precision="bf16" if precision == "bf16" else "fp32",
            )
            analyzer = analyzers[key] = ANALYZERS[task](config)
            if not tokens:
                tokens = real_tokens(analyzer, docs)
            params = non_embedding_params(analyzer.loaded.model)
            # The worker's warm-up (analysis_pool: warm_up(), then two short texts).
            started = time.perf_counter()
            analyzer.warm_up()
            analyzer.analyze_batch(list(docs[:2]), ["zh"] * 2)
            if torch.cuda.is_available() and device.startswith("cuda"):
                torch.cuda.synchronize()
            results[key] = VariantResult(
                batch_size=batch,
                precision=precision,
                docs=len(docs),
                tokens=tokens,
                gflop_per_round=round(2.0 * params * tokens / 1e9, 2),
                warmup_s=round(time.perf_counter() - started, 3),
            )
    for round_index in range(rounds):
        keys = list(analyzers) if round_index % 2 == 0 else list(reversed(analyzers))
        for key in keys:
            rate = run_variant(analyzers[key], docs, call_size)
            results[key].rounds_docs_per_s.append(round(rate, 2))
            print(
                f"  {size:5} {task:9} {key:10} round {round_index + 1}: {rate:9.1f} docs/s",
                flush=True,
            )
    del analyzers
    gc.collect()
    mean_chars = sum(len(d) for d in docs) / max(1, len(docs))
    return Measurement(size, task, len(docs), round(mean_chars, 1), results)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:,.1f}{suffix}"


def summarise(
    m: Measurement, micro: int, device: torch.device, threads: int, peak: float | None
) -> dict[str, Any]:
    fp32_1, fp32_n = m.rate(1, "fp32"), m.rate(micro, "fp32")
    bf16_1, bf16_n = m.rate(1, "bf16"), m.rate(micro, "bf16")
    measured = {p: r for p, r in (("fp32", fp32_n), ("bf16", bf16_n)) if r is not None}
    best_precision = max(measured, key=lambda p: measured[p])
    best_n = measured[best_precision]
    singles = [x for x in (fp32_1, bf16_1) if x is not None]
    best_1 = max(singles) if singles else None
    best_variant = m.variants[f"b{micro}-{best_precision}"]
    device_peak = peak or peak_tflops(device, best_precision, threads)
    achieved = best_variant.best * best_variant.gflop_per_round / best_variant.docs / 1000.0
    return {
        "size": m.size,
        "task": m.task,
        "micro_batch": micro,
        "docs": m.docs,
        "mean_chars": m.mean_chars,
        "b1_fp32": fp32_1,
        f"b{micro}_fp32": fp32_n,
        "b1_bf16": bf16_1,
        f"b{micro}_bf16": bf16_n,
        "micro_vs_b1_fp32": _ratio(fp32_n, fp32_1),
        "micro_vs_b1_best": _ratio(best_n, best_1),
        "bf16_vs_fp32_micro": _ratio(bf16_n, fp32_n),
        "bf16_vs_fp32_b1": _ratio(bf16_1, fp32_1),
        "best_precision_micro": best_precision,
        "tokens_per_doc": round(best_variant.tokens / max(1, best_variant.docs), 1),
        "tokens_per_s_micro": best_variant.tokens_per_s,
        "tflops_micro": round(achieved, 3),
        "peak_tflops": device_peak,
        "peak_fraction_micro": round(achieved / device_peak, 4) if device_peak else None,
        "warmup_s_micro": best_variant.warmup_s,
        "first_vs_steady_micro": best_variant.first_vs_steady,
        "variants": {
            k: asdict(v)
            | {"best": v.best, "tokens_per_s": v.tokens_per_s, "first_vs_steady": v.first_vs_steady}
            for k, v in m.variants.items()
        },
    }


def markdown(rows: Sequence[dict[str, Any]], micro: int) -> str:
    lines = [
        f"| model | task | docs | b1 fp32 | b{micro} fp32 | b1 bf16 | b{micro} bf16 "
        f"| b{micro}/b1 (fp32) | b{micro}/b1 (best) | bf16/fp32 (b{micro}) | use |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['task']} | {r['docs']} | {_fmt(r['b1_fp32'])} "
            f"| {_fmt(r[f'b{micro}_fp32'])} | {_fmt(r['b1_bf16'])} | {_fmt(r[f'b{micro}_bf16'])} "
            f"| {_fmt(r['micro_vs_b1_fp32'], 'x')} | {_fmt(r['micro_vs_b1_best'], 'x')} "
            f"| {_fmt(r['bf16_vs_fp32_micro'], 'x')} | {r['best_precision_micro']} |"
        )
    lines += [
        "",
        f"| model | task | tokens/doc | b{micro} tokens/s | TFLOP/s | of peak (TFLOP/s) "
        "| warm-up s | first round / steady |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fraction = r["peak_fraction_micro"]
        lines.append(
            f"| {r['size']} | {r['task']} | {r['tokens_per_doc']} "
            f"| {_fmt(r['tokens_per_s_micro'])} | {r['tflops_micro']:.3f} "
            f"| {'n/a' if fraction is None else f'{fraction:.1%}'} ({r['peak_tflops']:g}) "
            f"| {r['warmup_s_micro']:.2f} | {_fmt(r['first_vs_steady_micro'], 'x')} |"
        )
    return "\n".join(lines)


def decode_bench(
    model_dir: Path, docs: Sequence[str], rounds: int, max_length: int
) -> dict[str, Any]:
    """Entity decoding alone, old (per-token) vs new (vectorised), same inputs, best of
    interleaved rounds."""
    recognizer = TransformersEntityRecognizer(
        TransformersConfig(model=str(model_dir), max_length=max_length, precision="fp32")
    )
    texts = list(docs)
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
    labels = recognizer._forward.run(encoded["input_ids"], lambda logits: logits.argmax(-1))

    def old() -> list[Any]:
        return reference_entity_decoder.decode(texts, encoded, labels, recognizer.roles)

    def new() -> list[Any]:
        return decode_batch(tagged_windows(texts, encoded, labels), recognizer.table)

    if old() != new():
        raise AssertionError("the vectorised decoder disagrees with the per-token one")
    best = {"old": float("inf"), "new": float("inf")}
    for index in range(max(3, rounds)):
        pair = [("old", old), ("new", new)]
        for name, run in pair if index % 2 == 0 else reversed(pair):
            gc.collect()
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    entities = sum(len(found) for found in new())
    return {
        "docs": len(texts),
        "windows": len(encoded["input_ids"]),
        "entities": entities,
        "old_docs_per_s": round(len(texts) / best["old"], 1),
        "new_docs_per_s": round(len(texts) / best["new"], 1),
        "new_vs_old": round(best["old"] / best["new"], 2),
    }


def compare_old(
    model_dirs: dict[str, Path],
    docs: Sequence[str],
    rounds: int,
    call_size: int,
    batch: int,
    precision: str,
) -> dict[str, Any]:
    """The whole stage, the code path before issue 20 (padding-share batching, per-token
    entity decoder: tests/analyzers/reference_entity_decoder.py) against today's, on the
    same analyzer and documents, best of interleaved rounds; one thread."""
    from analyzers import transformers_runtime

    current = transformers_runtime.micro_batches
    out: dict[str, Any] = {}
    for task in ("sentiment", "entities"):
        analyzer = ANALYZERS[task](
            TransformersConfig(
                model=str(model_dirs[task]),
                batch_size=batch,
                num_threads=1,
                precision="bf16" if precision == "bf16" else "fp32",
            )
        )
        analyzer.warm_up()

        def chunks() -> Any:
            for begin in range(0, len(docs), call_size):
                yield list(docs[begin : begin + call_size])

        def new(analyzer: Any = analyzer) -> None:
            for chunk in chunks():
                analyzer.analyze_batch(chunk, ["zh"] * len(chunk))

        def old(analyzer: Any = analyzer, task: str = task) -> None:
            transformers_runtime.micro_batches = (
                reference_entity_decoder.padding_share_micro_batches
            )
            try:
                for chunk in chunks():
                    if task == "sentiment":
                        analyzer.analyze_batch(chunk, ["zh"] * len(chunk))
                        continue
                    encoded = analyzer.encode(chunk)
                    labels = analyzer._forward.run(encoded["input_ids"], lambda x: x.argmax(-1))
                    reference_entity_decoder.decode(chunk, encoded, labels, analyzer.roles)
            finally:
                transformers_runtime.micro_batches = current

        best = {"old": float("inf"), "new": float("inf")}
        for index in range(max(4, rounds)):
            pair = [("old", old), ("new", new)]
            for name, run in pair if index % 2 == 0 else reversed(pair):
                gc.collect()
                started = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - started)
        out[task] = {
            "old_docs_per_s": round(len(docs) / best["old"], 1),
            "new_docs_per_s": round(len(docs) / best["new"], 1),
            "new_vs_old": round(best["old"] / best["new"], 2),
        }
        print(
            f"  compare-old small {task} b{batch} {precision}: "
            f"old {out[task]['old_docs_per_s']:,.0f}, new {out[task]['new_docs_per_s']:,.0f} "
            f"docs/s: {out[task]['new_vs_old']}x",
            flush=True,
        )
    return out


def targets(
    rows: Sequence[dict[str, Any]], device: str, decode: dict[str, Any] | None
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    if decode is not None:
        checks["small/entities: decoding >= 3x the per-token decoder"] = decode["new_vs_old"] >= 3.0
    for r in rows:
        first = r["first_vs_steady_micro"]
        if first is not None and device.startswith("cuda"):
            checks[f"{r['size']}/{r['task']}: first round >= 0.8x steady state (GPU)"] = (
                first >= 0.8
            )
        ratio = r["micro_vs_b1_best"]
        if r["size"] == "small" and ratio is not None:  # None with --skip-batch-1
            checks[f"small/{r['task']}: micro-batched >= 1.5x batch 1"] = (
                ratio is not None and ratio >= 1.5
            )
        if r["size"] == "base" and device.startswith("cuda") and ratio is not None:
            checks[f"base/{r['task']}: micro-batched >= 10x batch 1 (GPU)"] = (
                ratio is not None and ratio >= 10.0
            )
    if device.startswith("cuda"):
        rates = {
            r["task"]: r[f"b{r['micro_batch']}_{r['best_precision_micro']}"]
            for r in rows
            if r["size"] == "base"
        }
        if rates.get("sentiment"):
            checks["base/sentiment: >= 30,000 docs/s (GPU)"] = rates["sentiment"] >= 30_000
            if rates.get("entities"):
                checks["base/entities: >= 0.6x sentiment's rate (GPU)"] = (
                    rates["entities"] >= 0.6 * rates["sentiment"]
                )
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="< 2 minutes on a small CPU")
    parser.add_argument("--sizes", default="small,base")
    parser.add_argument("--tasks", default="sentiment,entities")
    parser.add_argument("--docs", type=int, default=None, help="documents, small model")
    parser.add_argument("--base-docs", type=int, default=None, help="documents, base model")
    parser.add_argument("--batch-size", type=int, default=32, help="the micro-batch size")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--call-size", type=int, default=256, help="texts per analyze_batch")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--precisions", default="auto", help="auto, fp32 or fp32,bf16")
    parser.add_argument(
        "--batch-tokens", type=int, default=8192, help="micro-batch token budget (padded)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak TFLOP/s at the precision used (default: by device name "
        "for known GPUs, 0.16 per thread on a CPU)",
    )
    parser.add_argument(
        "--decode-docs", type=int, default=None, help="decode micro-bench docs (2000; 1000 quick)"
    )
    parser.add_argument("--no-decode-bench", action="store_true")
    parser.add_argument(
        "--skip-batch-1", action="store_true", help="time only micro-batches (long GPU runs)"
    )
    parser.add_argument(
        "--compare-old",
        action="store_true",
        help="also time the small model's stage on the code path before issue 20",
    )
    parser.add_argument(
        "--decode-bench-only", action="store_true", help="only the entity-decoding micro-bench"
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path.home() / ".cache" / "contentstream" / "bench-models",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model_stage.json")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if args.precisions == "auto":
        precisions = ["fp32", "bf16"] if bf16_supported(device) else ["fp32"]
    else:
        precisions = args.precisions.split(",")
    if gpu:
        small_docs, base_docs, rounds = 4000, 2000, 3
    else:
        small_docs, base_docs, rounds = 2000, 256, 3
    if args.quick:
        small_docs, base_docs, rounds = (1000, 500, 2) if gpu else (400, 32, 2)
    small_docs = args.docs or small_docs
    base_docs = args.base_docs or base_docs
    rounds = args.rounds or rounds
    torch.set_num_threads(args.threads)

    docs, source = load_documents(max(small_docs, base_docs))
    print(
        f"documents: {source}; device {device}; threads {args.threads}; "
        f"precisions {precisions}; rounds {rounds}",
        flush=True,
    )

    started = time.perf_counter()
    rows = []
    sizes = [] if args.decode_bench_only else args.sizes.split(",")
    tasks = args.tasks.split(",")
    decode: dict[str, Any] | None = None
    if not args.no_decode_bench:
        decode_docs, _ = load_documents(args.decode_docs or (1000 if args.quick else 2000), seed=1)
        decode = decode_bench(
            build_pair(args.models_dir, "small", seed=0)["entities"],
            decode_docs,
            rounds,
            args.max_length,
        )
        print(
            f"decode micro-bench ({decode['docs']} docs, {decode['windows']} windows, "
            f"{decode['entities']} entities): per-token {decode['old_docs_per_s']:,.0f} "
            f"docs/s, vectorised {decode['new_docs_per_s']:,.0f} docs/s: "
            f"{decode['new_vs_old']}x",
            flush=True,
        )
    compared: dict[str, Any] = {}
    if args.compare_old:
        small = build_pair(args.models_dir, "small", seed=0)
        for precision in precisions:
            for batch in (1, args.batch_size):
                compared[f"b{batch}-{precision}"] = compare_old(
                    small, docs[:small_docs], rounds, args.call_size, batch, precision
                )
    for size in sizes:
        built = build_pair(args.models_dir, size, seed=0)
        count = small_docs if size != "base" else base_docs
        # Quick CPU runs time BERT-base on sentiment only: it runs ~3 docs/s per core.
        size_tasks = ["sentiment"] if size == "base" and args.quick and not gpu else tasks
        for task in size_tasks:
            m = measure(
                size,
                task,
                built[task],
                docs[:count],
                device=args.device,
                threads=args.threads,
                batch_sizes=[args.batch_size] if args.skip_batch_1 else [1, args.batch_size],
                precisions=precisions,
                rounds=rounds,
                call_size=args.call_size,
                max_length=args.max_length,
                batch_tokens=args.batch_tokens,
            )
            rows.append(summarise(m, args.batch_size, device, args.threads, args.peak_tflops))
    table = markdown(rows, args.batch_size) if rows else ""
    checks = targets(rows, args.device, decode)
    print()
    print(table)
    print()
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")

    report = {
        "benchmark": "model_stage",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "documents": source,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if gpu else platform.processor(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_supported": bf16_supported(device),
        "threads": args.threads,
        "torch": torch.__version__,
        "max_length": args.max_length,
        "call_size": args.call_size,
        "micro_batch": args.batch_size,
        "rounds": rounds,
        "quick": args.quick,
        "batch_tokens": args.batch_tokens,
        "results": rows,
        "decode_bench": decode,
        "compare_old": compared,
        "targets": checks,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} ({report['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
