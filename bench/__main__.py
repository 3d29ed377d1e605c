"""contentstream benchmarks: every figure a ratio measured side by side in one run.

    python -m bench [--quick] [--only NAME[,NAME...]] [--results-dir DIR]

Suites: analysis (analysis-only limit), transport (worker with language only vs a
plain aiokafka loop), e2e (full worker: saturation, latency at 100%/50%), e2e_faust
(the same with the Faust engine: saturation), tutorial
(the seed tutorial's design), scaling (1 vs 2 workers), memory (peak RSS of the
workers measured above), analyzers (bench/analyzers.py), model_stage
(bench/model_stage.py), http (bench/http_api.py: the HTTP API vs its analysis-only
limit and the tutorial's HTTP design). Needs Kafka (KAFKA_BOOTSTRAP_SERVERS) for all but analysis,
analyzers and model_stage; REDIS_URL is optional (dedup then runs in-process).

Prints one markdown table; writes bench/results/<suite>.json and summary.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from bench.corpus import REPO_ROOT, load_corpus
from bench.memory import WORKER_RSS_LIMIT_MB, summarise
from bench.transport import BenchContext, SuiteResult, bench_redis_url, clear_dedup, delete_topics

SUITES = (
    "analysis",
    "transport",
    "e2e",
    "e2e_faust",
    "tutorial",
    "scaling",
    "memory",
    "analyzers",
    "model_stage",
    "http",
    "tracing",
)
KAFKA_SUITES = {"transport", "e2e", "e2e_faust", "tutorial", "scaling", "memory"}
READY_TIMEOUT_S = 300.0
DEFAULT_RESULTS = REPO_ROOT / "bench" / "results"


class Suite(Protocol):
    name: str

    async def prepare(self) -> None: ...

    async def wait_ready(self, timeout_s: float) -> None: ...

    async def measure(self) -> SuiteResult: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True, slots=True)
class Check:
    """One acceptance target: ``value >= target`` (or ``<=`` when ``at_most``)."""

    name: str
    value: float | None
    target: float
    unit: str = "x"
    at_most: bool = False

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        ok = self.value <= self.target if self.at_most else self.value >= self.target
        return "PASS" if ok else "FAIL"

    def describe_target(self) -> str:
        sign = "≤" if self.at_most else "≥"
        return f"{sign} {fmt_number(self.target)}{' ' + self.unit if self.unit != 'x' else '×'}"

    def describe_value(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        if self.unit == "x":
            return f"{self.value:.2f}×"
        return f"{fmt_number(self.value)} {self.unit}"


def fmt_number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def max_of(*values: float | None) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return max(known) if known else None


def figure(results: dict[str, SuiteResult], suite: str, key: str) -> float | None:
    found = results.get(suite)
    if found is None:
        return None
    value = found.figures.get(key)
    return None if value is None else float(value)


def acceptance(results: dict[str, SuiteResult]) -> list[Check]:
    e2e = figure(results, "e2e", "events_per_s")
    memory = results.get("memory")
    return [
        Check(
            "end to end / analysis-only limit",
            ratio(e2e, figure(results, "analysis", "docs_per_s")),
            0.85,
        ),
        Check(
            # The same processor behind Faust's agent: its stream machinery is the gap.
            "Faust engine / batch engine, end to end",
            ratio(figure(results, "e2e_faust", "events_per_s"), e2e),
            0.7,
        ),
        Check(
            "end to end / tutorial design",
            ratio(e2e, figure(results, "tutorial", "events_per_s")),
            1.8,
        ),
        Check(
            "2 workers / 1 worker",
            ratio(
                figure(results, "scaling", "two_events_per_s"),
                figure(results, "scaling", "one_events_per_s"),
            ),
            1.7,
        ),
        Check(
            "transport per worker",
            figure(results, "transport", "worker_events_per_s"),
            10_000,
            unit="events/s",
        ),
        Check(
            "transport / plain aiokafka loop",
            ratio(
                figure(results, "transport", "worker_events_per_s"),
                figure(results, "transport", "plain_events_per_s"),
            ),
            0.7,
        ),
        Check(
            "p99 latency at 50% of saturation",
            figure(results, "e2e", "p99_ms_at_50%"),
            500,
            "ms",
            True,
        ),
        Check(
            "HTTP batches of 32 / analysis-only limit",
            ratio(
                figure(results, "http", "api_batches_texts_per_s"),
                max_of(
                    figure(results, "http", "analysis_only_texts_per_s"),
                    figure(results, "http", "analysis_only_after_texts_per_s"),
                ),
            ),
            0.8,
        ),
        Check(
            "HTTP one text, p99 at 50% of saturation",
            figure(results, "http", "single_p99_ms_at_50%"),
            50,
            "ms",
            True,
        ),
        Check(
            "HTTP batches of 32 / tutorial HTTP design",
            ratio(
                figure(results, "http", "api_batches_texts_per_s"),
                figure(results, "http", "tutorial_texts_per_s"),
            ),
            5.0,
        ),
        Check(
            "worker peak RSS (default analyzers)",
            memory.figures.get("worker_peak_rss_mb") if memory else None,
            WORKER_RSS_LIMIT_MB,
            "MB",
            True,
        ),
    ]


# --------------------------------------------------------------------------- table


def render_table(results: dict[str, SuiteResult], checks: Sequence[Check]) -> str:
    lines = ["| suite | measure | value | target | verdict |", "|---|---|---:|---:|---|"]
    for name, result in results.items():
        if result.error:
            lines.append(f"| {name} | error | {result.error.splitlines()[0][:80]} | | ERROR |")
        for measure, value in result.rows:
            lines.append(f"| {name} | {measure} | {value} | | |")
    for check in checks:
        lines.append(
            f"| **target** | {check.name} | {check.describe_value()} | {check.describe_target()} "
            f"| {check.verdict} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = None
    with contextlib.suppress(OSError):
        load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
    }


# --------------------------------------------------------------------------- sub-benchmarks


def run_script(args: list[str], timeout_s: float) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout_s:.0f}s"
    return proc.returncode, proc.stdout[-4000:] + proc.stderr[-4000:]


def analyzers_suite(quick: bool, results_dir: Path) -> SuiteResult:
    """bench/analyzers.py (another engineer's): per-analyzer docs/s on one core."""
    result = SuiteResult("analyzers")
    script = REPO_ROOT / "bench" / "analyzers.py"
    if not script.is_file():
        result.error = "bench/analyzers.py not present"
        return result
    out = results_dir / "analyzers.json"
    args = [str(script), "--output", str(out)] + (["--limit", "500"] if quick else [])
    code, log = run_script(args, 600.0 if quick else 3600.0)
    if code != 0 or not out.is_file():
        result.error = f"exit {code}: {log.strip().splitlines()[-1] if log.strip() else ''}"
        return result
    report = orjson.loads(out.read_bytes())
    result.raw = report
    for label, rows in report.get("results", {}).items():
        for row in rows:
            if row.get("stage") == "all (pipeline)":
                key = "long_docs_per_s" if "1000" in label else "docs_per_s"
                result.figures[key] = float(row["docs_per_s"])
                result.rows.append(
                    (f"one core, all stages, {label} (docs/s)", f"{row['docs_per_s']:,.0f}")
                )
        per_stage = [
            f"{r['stage']} {r['docs_per_s']:,.0f}"
            for r in rows
            if r.get("stage") != "all (pipeline)" and "1000" not in label
        ]
        if per_stage:
            result.rows.append((f"one core, per stage, {label} (docs/s)", ", ".join(per_stage)))
    for label, found in (report.get("side_by_side") or {}).items():
        if found:
            key = "long_reference_ratio" if "1000" in label else "reference_ratio"
            result.figures[key] = float(found["ratio"])
            result.rows.append(
                (
                    f"one core, {label}, side by side with the tutorial's jieba engine "
                    f"({found['docs']} docs): pipeline / jieba (docs/s)",
                    f"{found['pipeline_docs_per_s']:,.0f} / {found['reference_docs_per_s']:,.1f}"
                    f" = {found['ratio']:.1f}×",
                )
            )
    return result


def model_stage_suite(quick: bool, results_dir: Path) -> SuiteResult:
    """bench/model_stage.py (another engineer's): the transformers stage, quick mode."""
    result = SuiteResult("model_stage")
    script = REPO_ROOT / "bench" / "model_stage.py"
    if not script.is_file():
        result.error = "bench/model_stage.py not present"
        return result
    out = results_dir / "model_stage.json"
    args = [str(script), "--quick", "--out", str(out)]
    if quick:
        args += ["--sizes", "small", "--tasks", "sentiment"]
    code, log = run_script(args, 900.0)
    if code != 0 or not out.is_file():
        result.error = f"exit {code}: {log.strip().splitlines()[-1] if log.strip() else ''}"
        return result
    report = orjson.loads(out.read_bytes())
    result.raw = report
    micro = report.get("micro_batch", 32)
    for row in report.get("results", []):
        best = row.get(f"b{micro}_{row.get('best_precision_micro', 'fp32')}")
        times = row.get("micro_vs_b1_best")
        result.rows.append(
            (
                f"{row['size']} {row['task']}, batch {micro} "
                f"{row.get('best_precision_micro')} (docs/s)",
                f"{best:,.0f} ({times}× batch 1)" if best else "n/a",
            )
        )
    for name, passed in report.get("targets", {}).items():
        result.rows.append((name, "PASS" if passed else "FAIL"))
    return result


def http_suite(quick: bool, results_dir: Path) -> SuiteResult:
    """bench/http_api.py: the HTTP API against the analysis-only limit and the tutorial's
    HTTP design, side by side in one run (loopback, bounded)."""
    result = SuiteResult("http")
    out = results_dir / "http.json"
    args = [str(REPO_ROOT / "bench" / "http_api.py"), "--output", str(out)]
    code, log = run_script(args + (["--quick"] if quick else []), 900.0 if quick else 2400.0)
    if code != 0 or not out.is_file():
        result.error = f"exit {code}: {log.strip().splitlines()[-1] if log.strip() else ''}"
        return result
    report = orjson.loads(out.read_bytes())
    result.raw = report
    labels = {
        "analysis_only": "analysis-only limit, batches of 32 (texts/s)",
        "analysis_only_after": "analysis-only limit again, after the HTTP phases (texts/s)",
        "api_batches": "POST /v1/analyze, batches of 32 (texts/s)",
        "api_single_saturated": "POST /v1/analyze, one text, saturated (texts/s)",
        "tutorial": "tutorial design, one text, thread pool (texts/s)",
    }
    for key, label in labels.items():
        rate = report.get(key, {}).get("texts_per_s")
        if rate is not None:
            result.figures[f"{key}_texts_per_s"] = float(rate)
            result.rows.append((label, f"{rate:,.0f}"))
    paced = report.get("api_single_at_50%", {})
    if paced:
        result.figures["single_p99_ms_at_50%"] = float(paced["p99_ms"])
        result.rows.append(
            (
                f"one text at 50% of saturation ({paced['rate_per_s']}/s): p50 / p99 (ms)",
                f"{paced['p50_ms']} / {paced['p99_ms']}",
            )
        )
    return result


def tracing_suite(quick: bool, results_dir: Path) -> SuiteResult:
    """bench/tracing.py: processor CPU per event before headers, with them, and traced."""
    result = SuiteResult("tracing")
    out = results_dir / "tracing.json"
    args = ["-m", "bench.tracing", "--json", str(out)]  # -m: the repository on sys.path
    args += ["--events", "10000", "--rounds", "3"] if quick else ["--rounds", "7"]
    code, log = run_script(args, 600.0)
    if code != 0 or not out.is_file():
        result.error = f"exit {code}: {log.strip().splitlines()[-1] if log.strip() else ''}"
        return result
    report = orjson.loads(out.read_bytes())
    result.raw = report
    medians = report["median_us_per_event"]
    base = medians["before"]
    for mode, value in medians.items():
        result.figures[f"{mode}_us_per_event"] = float(value)
        result.rows.append(
            (f"processor CPU per event, {mode} (µs)", f"{value:.1f} ({value / base:.2f}× before)")
        )
    return result


# --------------------------------------------------------------------------- driver


def build_suites(ctx: BenchContext, names: Sequence[str]) -> list[Suite]:
    from bench.baseline_tutorial import TutorialSuite
    from bench.end_to_end import AnalysisOnlySuite, EndToEndSuite, FaustEndToEndSuite
    from bench.scaling import ScalingSuite
    from bench.transport import TransportSuite

    makers: dict[str, Callable[[BenchContext], Suite]] = {
        "analysis": AnalysisOnlySuite,
        "transport": TransportSuite,
        "e2e": EndToEndSuite,
        "e2e_faust": FaustEndToEndSuite,
        "tutorial": TutorialSuite,
        "scaling": ScalingSuite,
    }
    return [makers[n](ctx) for n in makers if n in names]


async def close_quietly(suite: Suite) -> None:
    """Suites stop their own processes after measuring; this is the safety net."""
    try:
        await suite.close()
    except Exception as exc:
        print(f"[bench] closing {suite.name} failed: {exc}", file=sys.stderr)


async def run_suites(ctx: BenchContext, names: Sequence[str]) -> dict[str, SuiteResult]:
    """Start every suite's processes at once (worker start-up is the slow part and is
    not what is measured), then measure one suite at a time."""
    results: dict[str, SuiteResult] = {}
    suites = build_suites(ctx, names)
    redis = bench_redis_url(ctx.redis_url)
    try:
        prepared: list[Suite] = []
        for suite in suites:
            try:
                await asyncio.wait_for(suite.prepare(), READY_TIMEOUT_S)
                prepared.append(suite)
            except Exception as exc:
                results[suite.name] = SuiteResult(suite.name, error=f"setup failed: {exc!r}")
        started = time.monotonic()
        readiness = await asyncio.gather(
            *(s.wait_ready(READY_TIMEOUT_S) for s in prepared), return_exceptions=True
        )
        print(
            f"[bench] {len(prepared)} suite(s) ready in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
        # The analysis-only limit is measured again right after the end-to-end run
        # (AnalysisOnlySuite.measure_again), so its pool stays up until then.
        from bench.end_to_end import AnalysisOnlySuite

        bracket = {"analysis", "e2e"} <= {s.name for s in prepared}
        held: Suite | None = None
        for suite, ready in zip(prepared, readiness, strict=True):
            if isinstance(ready, BaseException):
                results[suite.name] = SuiteResult(suite.name, error=f"not ready: {ready}")
                await close_quietly(suite)
                continue
            print(f"[bench] measuring {suite.name}", file=sys.stderr)
            t0 = time.monotonic()
            try:
                results[suite.name] = await suite.measure()
            except Exception as exc:
                traceback.print_exc()
                results[suite.name] = SuiteResult(suite.name, error=f"{type(exc).__name__}: {exc}")
            finally:
                if bracket and suite.name == "analysis" and not results[suite.name].error:
                    held = suite
                else:
                    await close_quietly(suite)
            print(f"[bench] {suite.name} took {time.monotonic() - t0:.1f}s", file=sys.stderr)
            if suite.name == "e2e" and isinstance(held, AnalysisOnlySuite):
                print("[bench] measuring analysis again (after e2e)", file=sys.stderr)
                try:
                    await held.measure_again(results["analysis"])
                except Exception:
                    traceback.print_exc()
                finally:
                    await close_quietly(held)
                    held = None
    finally:
        for suite in suites:
            await close_quietly(suite)
        if ctx.bootstrap:
            await delete_topics(ctx)
        with contextlib.suppress(Exception):
            await clear_dedup(redis)
    return results


def memory_suite(results: dict[str, SuiteResult]) -> SuiteResult:
    """Peak RSS read from /proc by the suites that ran workers, just before stopping them."""
    result = SuiteResult("memory")
    e2e = results.get("e2e")
    tree = e2e.raw.get("memory", []) if e2e else []
    if not tree:
        result.error = "no worker memory recorded (the e2e suite did not run)"
        return result
    summary = summarise(tree)
    result.figures = {k: float(v) for k, v in summary.items() if isinstance(v, int | float)}
    result.rows = [
        ("worker process, default analyzers, peak RSS (MB)", f"{summary['worker_peak_rss_mb']}"),
        (
            f"largest of {summary['pool_processes']} pool processes, peak RSS (MB)",
            f"{summary['pool_peak_rss_mb']}",
        ),
        ("worker + all its processes, peak RSS (MB)", f"{summary['all_processes_peak_rss_mb']}"),
    ]
    result.raw = {"e2e_worker": tree, "e2e_summary": summary}
    for other in ("transport", "scaling"):
        found = results.get(other)
        if found and found.raw.get("memory"):
            result.raw[f"{other}_workers"] = found.raw["memory"]
            result.raw[f"{other}_summary"] = summarise(found.raw["memory"])
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a sample of the corpus; < 2 minutes")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"run only these suites (repeat or comma-separate): {', '.join(SUITES)}",
    )
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    names = [n.strip() for chunk in args.only for n in chunk.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    if "memory" in names and "e2e" not in names:
        names.append("e2e")  # memory is read from the e2e worker
    args.names = names or list(SUITES)
    return args


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    host = machine()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    names = list(args.names)
    if not bootstrap and KAFKA_SUITES & set(names):
        print(
            "[bench] KAFKA_BOOTSTRAP_SERVERS is not set: skipping the Kafka suites", file=sys.stderr
        )
        names = [n for n in names if n not in KAFKA_SUITES]
    corpus = load_corpus(quick=args.quick)
    ctx = BenchContext(
        bootstrap=bootstrap,
        redis_url=os.environ.get("REDIS_URL") or None,
        quick=args.quick,
        corpus=corpus,
        results_dir=args.results_dir,
    )
    ctx.clear_old_logs()
    print(f"[bench] corpus: {corpus.describe()}", file=sys.stderr)
    results = asyncio.run(run_suites(ctx, names))
    if "memory" in names:
        results["memory"] = memory_suite(results)
    for name, run in (
        ("analyzers", analyzers_suite),
        ("model_stage", model_stage_suite),
        ("http", http_suite),
        ("tracing", tracing_suite),
    ):
        if name in names:
            print(f"[bench] measuring {name}", file=sys.stderr)
            t0 = time.monotonic()
            results[name] = run(args.quick, args.results_dir)
            print(f"[bench] {name} took {time.monotonic() - t0:.1f}s", file=sys.stderr)

    results = {n: results[n] for n in SUITES if n in results}
    checks = acceptance(results)
    table = render_table(results, checks)
    elapsed = time.monotonic() - started
    print(table)
    print(
        f"\n{'quick' if args.quick else 'full'} mode, {elapsed:.0f}s, {host['nproc']} CPUs "
        f"({host['cpu_model']}), Python {host['python']}"
    )
    common = {
        "mode": "quick" if args.quick else "full",
        "machine": host,
        "corpus": corpus.describe(),
    }
    for name, result in results.items():
        if name in ("analyzers", "model_stage"):
            continue  # those scripts write their own JSON
        write_json(
            args.results_dir / f"{name}.json",
            {
                **common,
                "suite": name,
                "figures": result.figures,
                "error": result.error,
                **result.raw,
            },
        )
    write_json(
        args.results_dir / "summary.json",
        {
            **common,
            "elapsed_s": round(elapsed, 1),
            "figures": {n: r.figures for n, r in results.items()},
            "errors": {n: r.error for n, r in results.items() if r.error},
            "targets": [
                {
                    "name": c.name,
                    "value": c.value,
                    "target": c.target,
                    "unit": c.unit,
                    "at_most": c.at_most,
                    "verdict": c.verdict,
                }
                for c in checks
            ],
            "table": table,
        },
    )
    return 1 if any(r.error for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
