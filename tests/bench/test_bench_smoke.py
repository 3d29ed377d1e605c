"""The pure parts of the benchmark driver: input loading, maths, verdicts, the table.

No Kafka, no Redis, no worker processes: these run in the unit suite.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import orjson
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.__main__ import Check, acceptance, parse_args, render_table  # noqa: E402
from bench.corpus import LONG_CHARS, load_corpus, take  # noqa: E402
from bench.memory import cpu_per_event, kib_to_mb, process_tree, summarise  # noqa: E402
from bench.transport import (  # noqa: E402
    SuiteResult,
    bench_redis_url,
    latency_summary,
    parse_metrics,
    percentile,
    window_rate,
)


def _write_corpus(root: Path, texts: list[str]) -> None:
    folder = root / "corpus"
    folder.mkdir(parents=True)
    lines = [orjson.dumps({"id": i, "text": t}) for i, t in enumerate(texts)]
    lines.insert(1, b"not json")
    lines.insert(2, orjson.dumps({"id": "x", "text": "   "}))
    (folder / "zh_mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_corpus_falls_back_to_examples_without_data(tmp_path: Path) -> None:
    corpus = load_corpus(quick=False, directory=tmp_path / "absent")
    assert corpus.texts, "examples/events.jsonl must stand in"
    assert "fallback" in corpus.source
    assert all(isinstance(t, str) and t.strip() for t in corpus.texts)
    assert corpus.long_texts == [t for t in corpus.texts if len(t) >= LONG_CHARS]


def test_corpus_reads_all_in_full_mode_and_a_fixed_sample_in_quick_mode(tmp_path: Path) -> None:
    short = [f"短文本{i}" for i in range(50)]
    long = ["长" * LONG_CHARS + str(i) for i in range(5)]
    _write_corpus(tmp_path, short + long)

    full = load_corpus(quick=False, directory=tmp_path)
    assert full.texts == short + long  # malformed and blank rows skipped, order kept
    assert full.long_texts == long

    quick = load_corpus(quick=True, directory=tmp_path, sample=10, long_sample=2)
    again = load_corpus(quick=True, directory=tmp_path, sample=10, long_sample=2)
    assert len(quick.texts) == 10 and len(quick.long_texts) == 2
    assert quick.texts == again.texts, "the quick sample must be the same every run"
    assert set(quick.texts) <= set(full.texts)


def test_take_wraps_around_and_gives_disjoint_slices() -> None:
    texts = ["a", "b", "c"]
    assert take(texts, 0, 2) == ["a", "b"]
    assert take(texts, 2, 4) == ["c", "a", "b", "c"]
    assert take([], 0, 3) == []


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 95) == 7.0
    assert percentile(list(reversed(values)), 95) == pytest.approx(95.05)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_window_rate_ignores_ramp_and_tail() -> None:
    steady = [i * 0.01 for i in range(1000)]  # 100 events/s
    assert window_rate(steady) == pytest.approx(100.0)
    # A slow start and a straggler at the end do not change the steady-state rate.
    noisy = [0.0, 5.0, *[10.0 + i * 0.01 for i in range(1000)], 60.0]
    assert window_rate(noisy, trim=0.01) == pytest.approx(100.0, rel=0.02)
    assert math.isnan(window_rate([1.0]))
    assert math.isnan(window_rate([2.0, 2.0, 2.0]))


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.010] * 98 + [0.500, 1.000])
    assert summary["p50_ms"] == pytest.approx(10.0)
    assert summary["p99_ms"] == pytest.approx(500.0 + 0.01 * 500.0, rel=0.01)
    assert summary["max_ms"] == pytest.approx(1000.0)


def test_checks_give_pass_fail_and_na() -> None:
    assert Check("ratio", 0.9, 0.85).verdict == "PASS"
    assert Check("ratio", 0.8, 0.85).verdict == "FAIL"
    assert Check("p99", 420.0, 500.0, "ms", at_most=True).verdict == "PASS"
    assert Check("p99", 520.0, 500.0, "ms", at_most=True).verdict == "FAIL"
    assert Check("missing", None, 1.0).verdict == "n/a"
    assert Check("nan", math.nan, 1.0).verdict == "n/a"
    assert Check("ratio", 1.234, 1.8).describe_value() == "1.23×"
    assert Check("ratio", 1.234, 1.8).describe_target() == "≥ 1.80×"
    assert Check("p99", 95.1, 500.0, "ms", True).describe_target() == "≤ 500 ms"


def test_acceptance_ratios_come_from_side_by_side_figures() -> None:
    results = {
        "analysis": SuiteResult("analysis", figures={"docs_per_s": 1000.0}),
        "e2e": SuiteResult("e2e", figures={"events_per_s": 900.0, "p99_ms_at_50%": 120.0}),
        "e2e_faust": SuiteResult("e2e_faust", figures={"events_per_s": 720.0}),
        "tutorial": SuiteResult("tutorial", figures={"events_per_s": 300.0}),
        "scaling": SuiteResult(
            "scaling", figures={"one_events_per_s": 400.0, "two_events_per_s": 720.0}
        ),
    }
    checks = {c.name: c for c in acceptance(results)}
    assert checks["end to end / analysis-only limit"].value == pytest.approx(0.9)
    assert checks["end to end / analysis-only limit"].verdict == "PASS"
    assert checks["end to end / tutorial design"].value == pytest.approx(3.0)
    assert checks["Faust engine / batch engine, end to end"].value == pytest.approx(0.8)
    assert checks["2 workers / 1 worker"].verdict == "PASS"
    assert checks["p99 latency at 50% of saturation"].verdict == "PASS"
    assert checks["transport per worker"].verdict == "n/a"  # the suite did not run
    assert checks["worker peak RSS (default analyzers)"].verdict == "n/a"


def test_table_has_one_row_per_measure_and_target() -> None:
    results = {
        "e2e": SuiteResult("e2e", rows=[("end to end (events/s)", "900")]),
        "scaling": SuiteResult("scaling", error="RuntimeError: worker w1 exited with 1\ntrace"),
    }
    checks = [Check("end to end / tutorial design", 2.0, 1.8)]
    lines = render_table(results, checks).splitlines()
    assert lines[0] == "| suite | measure | value | target | verdict |"
    assert lines[1].startswith("|---")
    assert "| e2e | end to end (events/s) | 900 | | |" in lines
    assert any("ERROR" in line and "worker w1 exited" in line for line in lines)
    assert lines[-1] == "| **target** | end to end / tutorial design | 2.00× | ≥ 1.80× | PASS |"
    assert all(line.count("|") == 6 for line in lines)


def test_only_selects_suites_and_memory_needs_e2e() -> None:
    args = parse_args(["--quick", "--only", "memory,analysis"])
    assert args.quick
    assert set(args.names) == {"memory", "analysis", "e2e"}
    assert "scaling" in parse_args([]).names
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])


def test_metrics_are_summed_over_labels() -> None:
    text = (
        "# HELP contentstream_dead_letters_total x\n"
        'contentstream_dead_letters_total{code="A"} 2.0\n'
        'contentstream_dead_letters_total{code="B"} 3.0\n'
        "contentstream_analysis_batch_size_sum 640.0\n"
        "other_metric 1.0\n"
    )
    found = parse_metrics(text)
    assert found == {
        "contentstream_dead_letters_total": 5.0,
        "contentstream_analysis_batch_size_sum": 640.0,
    }


def test_bench_redis_url_uses_its_own_database() -> None:
    assert bench_redis_url("redis://127.0.0.1:16379/0", 14) == "redis://127.0.0.1:16379/14"
    assert bench_redis_url("redis://h:1", 14) == "redis://h:1/14"
    assert bench_redis_url(None) is None


def test_memory_reads_proc() -> None:
    assert kib_to_mb("102400 kB") == 100.0
    assert kib_to_mb(None) is None
    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc on this platform")
    tree = process_tree(os.getpid())
    assert tree[0]["role"] == "worker" and tree[0]["pid"] == os.getpid()
    assert tree[0]["peak_rss_mb"] > 0
    summary = summarise(tree)
    assert summary["worker_peak_rss_mb"] == tree[0]["peak_rss_mb"]
    assert process_tree(None) == []


def test_cpu_per_event_by_role() -> None:
    before = {1: ("worker", 10.0), 2: ("pool", 5.0)}
    after = {1: ("worker", 10.5), 2: ("pool", 6.0), 3: ("pool", 1.0)}  # 3 started since
    assert cpu_per_event(before, after, 1000) == {
        "worker_cpu_us_per_event": 500.0,
        "pool_cpu_us_per_event": 2000.0,
    }
    assert cpu_per_event(before, after, 0) == {}


def test_scaling_combines_bursts_by_their_durations() -> None:
    from bench.scaling import combined_rate

    # 1,000 events at 1,000/s (1 s) and 1,000 at 500/s (2 s): 2,000 events in 3 s.
    bursts = [
        {"events": 1000, "events_per_s": 1000.0},
        {"events": 1000, "events_per_s": 500.0},
    ]
    assert combined_rate(bursts) == pytest.approx(2000 / 3)
    assert combined_rate([{"events": 10, "events_per_s": 0.0}]) == 0.0
    assert combined_rate([]) == 0.0


def test_scaling_weighs_machine_shares_by_burst_duration() -> None:
    from bench.scaling import combined_share

    bursts = [
        {"events": 1000, "events_per_s": 1000.0, "machine_busy_share": 0.6},  # 1 s
        {"events": 1000, "events_per_s": 500.0, "machine_busy_share": 0.9},  # 2 s
        {"events": 1000, "events_per_s": 500.0},  # no /proc reading: left out
    ]
    assert combined_share(bursts, "machine_busy_share") == pytest.approx(0.8)
    assert combined_share(bursts, "machine_steal_share") is None


def test_machine_cpu_share_from_proc_stat(tmp_path: Path) -> None:
    from bench.memory import machine_cpu_share, machine_cpu_ticks, machine_row

    def reading(user: int, system: int, idle: int, steal: int) -> dict[str, int]:
        (tmp_path / "stat").write_text(
            f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
        )
        return machine_cpu_ticks(tmp_path)

    before = reading(100, 50, 1000, 5)
    # 200 ticks pass: 120 user, 30 system, 40 idle, 10 stolen.
    after = reading(220, 80, 1040, 15)
    share = machine_cpu_share(before, after)
    assert share == {"machine_busy_share": 0.75, "machine_steal_share": 0.05}
    assert machine_row(share) == "75% / 5%"
    assert machine_cpu_share({}, after) == {}  # no reading before: no share
    assert machine_cpu_ticks(tmp_path / "absent") == {}
    assert machine_row({}) == "n/a"
    if Path("/proc/stat").is_file():
        live = machine_cpu_ticks()
        assert set(live) >= {"user", "system", "idle", "steal"} and live["idle"] > 0


def test_numbered_texts_are_unique_even_when_the_corpus_wraps() -> None:
    from bench.corpus import numbered_texts

    texts = numbered_texts(["a", "b"], 5)
    assert texts == ["a [0]", "b [1]", "a [2]", "b [3]", "a [4]"]
    assert numbered_texts([], 3) == []


def test_cpu_spent_counts_new_processes_from_zero_and_never_negative() -> None:
    from bench.memory import cpu_spent

    before = {1: ("worker", 2.0), 2: ("pool", 5.0)}
    after = {1: ("worker", 2.5), 2: ("pool", 4.0), 3: ("pool", 1.5)}
    assert cpu_spent(before, after) == {"worker": 0.5, "pool": 1.5}
