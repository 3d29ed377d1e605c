"""Throughput of the transformers stages: batch 1 vs micro-batches, fp32 vs bf16.

    python bench/model_stage.py [--quick] [--device cpu|cuda|cuda:N] [--threads N]

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

Prints a markdown table and writes JSON to bench/results/model_stage.json.
Targets: micro-batched >= 1.5x batch 1 on the small model (CPU); bf16 used where it is
faster; on a GPU, micro-batched BERT-base >= 10x batch 1.
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

from analyzers.config import TransformersConfig  # noqa: E402
from analyzers.transformers_entities import TransformersEntityRecognizer  # noqa: E402
from analyzers.transformers_runtime import bf16_supported, resolve_device  # noqa: E402
from analyzers.transformers_sentiment import TransformersSentimentAnalyzer  # noqa: E402

ANALYZERS: dict[str, Any] = {
    "sentiment": TransformersSentimentAnalyzer,
    "entities": TransformersEntityRecognizer,
}


@dataclass
class VariantResult:
    batch_size: int
    precision: str
    docs: int
    rounds_docs_per_s: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return max(self.rounds_docs_per_s) if self.rounds_docs_per_s else 0.0


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
) -> Measurement:
    analyzers: dict[str, Any] = {}
    results: dict[str, VariantResult] = {}
    for precision in precisions:
        for batch in batch_sizes:
            key = f"b{batch}-{precision}"
            config = TransformersConfig(
                model=str(model_dir),
                device=device,
                batch_size=batch,
                max_length=max_length,
                num_threads=threads,
                precision="bf16" if precision == "bf16" else "fp32",
            )
            analyzers[key] = ANALYZERS[task](config)
            results[key] = VariantResult(batch_size=batch, precision=precision, docs=len(docs))
            # Warm-up: the first calls allocate and pick kernels.
            analyzers[key].analyze_batch(list(docs[:4]), ["zh"] * 4)
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


def summarise(m: Measurement, micro: int) -> dict[str, Any]:
    fp32_1, fp32_n = m.rate(1, "fp32"), m.rate(micro, "fp32")
    bf16_1, bf16_n = m.rate(1, "bf16"), m.rate(micro, "bf16")
    best_precision = "bf16" if bf16_n and fp32_n and bf16_n > fp32_n else "fp32"
    best_n = bf16_n if best_precision == "bf16" else fp32_n
    best_1 = max(x for x in (fp32_1, bf16_1) if x is not None) if fp32_1 else None
    return {
        "size": m.size,
        "task": m.task,
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
        "variants": {k: asdict(v) | {"best": v.best} for k, v in m.variants.items()},
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
    return "\n".join(lines)


def targets(rows: Sequence[dict[str, Any]], device: str) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for r in rows:
        ratio = r["micro_vs_b1_best"]
        if r["size"] == "small":
            checks[f"small/{r['task']}: micro-batched >= 1.5x batch 1"] = (
                ratio is not None and ratio >= 1.5
            )
        if r["size"] == "base" and device.startswith("cuda"):
            checks[f"base/{r['task']}: micro-batched >= 10x batch 1 (GPU)"] = (
                ratio is not None and ratio >= 10.0
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
    sizes = args.sizes.split(",")
    tasks = args.tasks.split(",")
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
                batch_sizes=[1, args.batch_size],
                precisions=precisions,
                rounds=rounds,
                call_size=args.call_size,
                max_length=args.max_length,
            )
            rows.append(summarise(m, args.batch_size))
    table = markdown(rows, args.batch_size)
    checks = targets(rows, args.device)
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
        "results": rows,
        "targets": checks,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} ({report['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
