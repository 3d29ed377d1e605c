"""Write the JSON Schema files producers and consumers validate against.

Run ``python -m schemas.generate`` after changing a model; ``--check`` exits non-zero
when a committed file is out of date (the test suite runs the same comparison).

A deployment that adds analysis stages writes its own files, listing its stages in
``analyses`` and typing their values under ``extensions``:
``python -m schemas.generate --stages my_stages --out DIR`` (the modules that declare
them are imported first; ``--stages`` may be given more than once).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.dead_letter import DeadLetter
from schemas.events import ContentEvent
from schemas.results import AnalysisResult, result_model

SCHEMA_DIR = Path(__file__).parent / "json"
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "content_event.v1.json": ContentEvent,
    "analysis_result.v1.json": AnalysisResult,
    "dead_letter.v1.json": DeadLetter,
}


def render(model: type[BaseModel]) -> str:
    schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(model.model_json_schema())
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument(
        "--stages",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE (a module[:attr] as in CONTENTSTREAM_PIPELINE_FACTORY) for the "
        "stages it declares; needs --out",
    )
    parser.add_argument("--out", type=Path, help="write the files here (default schemas/json)")
    args = parser.parse_args(argv)
    if args.stages and args.out is None:
        parser.error("--stages writes a deployment's schema: give --out DIR")
    for module in args.stages:
        importlib.import_module(module.partition(":")[0])
    files = dict(SCHEMA_FILES)
    files["analysis_result.v1.json"] = result_model()
    out_dir: Path = args.out or SCHEMA_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, model in files.items():
        path = out_dir / name
        text = render(model)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m schemas.generate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
