"""``python -m evaluation``: scores every analyzer on the held-out labelled data.

Runs ``evaluate(data_dir) -> list[dict]`` of each ``evaluation.<task>`` module that exists
(rows: task, dataset, metric, value, n) and prints one markdown table, with the seconds
each task took. ``make eval`` runs it; ``make train`` runs it after retraining. Without
the data folder it prints why and exits 0 with "skipped" rows, so CI on a fresh clone stays green.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

from evaluation.data import default_data_dir

TASKS = (
    "language",
    "sentiment",
    "sentiment_en",
    "keywords",
    "summary",
    "entities",
    "entities_en",
)


def _skipped(task: str, note: str) -> dict[str, Any]:
    return {"task": task, "dataset": "-", "metric": "-", "value": None, "n": 0, "note": note}


def run_task(task: str, data_dir: Path) -> list[dict[str, Any]]:
    try:
        module = importlib.import_module(f"evaluation.{task}")
    except ModuleNotFoundError as exc:
        if exc.name == f"evaluation.{task}":
            return []  # that task has no evaluation yet
        raise
    started = time.perf_counter()
    try:
        rows: list[dict[str, Any]] = list(module.evaluate(data_dir))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return [_skipped(task, f"failed: {type(exc).__name__}: {exc}"[:200])]
    elapsed = time.perf_counter() - started
    for row in rows:
        row.setdefault("seconds", round(elapsed, 2))
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | dataset | metric | value | n | s | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        value = row.get("value")
        shown = (
            "skipped"
            if value is None
            else f"{value:.4f}"
            if isinstance(value, float)
            else str(value)
        )
        lines.append(
            f"| {row.get('task', '')} | {row.get('dataset', '')} | {row.get('metric', '')} | "
            f"{shown} | {row.get('n', '')} | {row.get('seconds', '')} | {row.get('note', '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation", description="Score the analyzers on held-out data."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="labelled data folder (default: $CONTENTSTREAM_DATA_DIR or ../shared/data)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}"
    )
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir or default_data_dir()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown tasks: {', '.join(unknown)}")

    rows: list[dict[str, Any]] = []
    if not data_dir.is_dir():
        print(
            f"data folder {data_dir} not found (set --data-dir or CONTENTSTREAM_DATA_DIR); "
            "nothing to evaluate",
            file=sys.stderr,
        )
        rows = [_skipped(task, "skipped: no data folder") for task in tasks]
    else:
        for task in tasks:
            rows.extend(run_task(task, data_dir))
    print(markdown_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
