"""The ``contentstream`` command: worker, produce, tail, replay, lag, analyze, api, settings."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("worker", "produce", "tail", "replay", "lag", "analyze", "api", "settings")
# Commands whose module is not streams.commands.<name>.
MODULES = {"api": "streams.api.command"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contentstream",
        description="Streaming content analysis for Chinese and English text on Kafka.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module_name = MODULES.get(name, f"streams.commands.{name}")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from schemas.errors import ConfigurationError
    from streams.redaction import mask_credentials

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        return 130
    except ConfigurationError as exc:
        print(f"contentstream: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # Settings come from the environment; pydantic quotes the offending value,
        # which for a URL setting may carry a password.
        print(f"contentstream: invalid settings: {mask_credentials(str(exc))}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
