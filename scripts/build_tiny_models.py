"""Build random-weight BERT sentiment and entity models locally (no downloads).

    python scripts/build_tiny_models.py OUT_DIR [--size tiny|small|base] [--seed 0]

writes OUT_DIR/<size>-sentiment and OUT_DIR/<size>-entities, each a Hugging Face model
directory (config.json, model.safetensors, tokenizer files) loadable with
``TransformersConfig(model="OUT_DIR/<size>-sentiment")``. The tokenizer is a
bert-base-chinese-like character vocabulary (~21k tokens). The weights are random: the
outputs are well-formed but meaningless, for demos, smoke tests and benchmarks only.
The builders are the ones the tests use (tests/analyzers/tiny_models.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "analyzers"))

import tiny_models  # noqa: E402

SHAPES = {"tiny": tiny_models.TINY, "small": tiny_models.SMALL, "base": tiny_models.BERT_BASE}


def build_pair(out_dir: Path, size: str, seed: int) -> dict[str, Path]:
    """Build (or reuse, when already there) the sentiment and entity models of ``size``."""
    built: dict[str, Path] = {}
    tokens = tiny_models.vocab_tokens()
    tasks: tuple[tiny_models.Task, ...] = ("sentiment", "entities")
    for task in tasks:
        directory = out_dir / f"{size}-{task}"
        if not (directory / "config.json").is_file():
            tiny_models.build_model(
                directory, task=task, shape=SHAPES[size], tokens=tokens, seed=seed
            )
        built[task] = directory
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for task, directory in build_pair(args.out_dir, args.size, args.seed).items():
        print(f"{task}: {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
