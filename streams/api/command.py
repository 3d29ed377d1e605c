"""``contentstream api``: serve the HTTP API; ``contentstream api hash-key``: the hash
to put in CONTENTSTREAM_API_KEYS_FILE for a key read from stdin."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "api",
        help="serve the HTTP API (POST /v1/analyze, POST /v1/events)",
        description="Serves the HTTP API on CONTENTSTREAM_API_HOST:CONTENTSTREAM_API_PORT "
        "with keys from CONTENTSTREAM_API_KEYS_FILE; every setting from the environment. "
        "`contentstream api hash-key` prints the SHA-256 hash of a key read from stdin.",
    )
    p.add_argument("action", nargs="?", choices=["serve", "hash-key"], default="serve")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "hash-key":
        from streams.api._keys import hash_key

        key = sys.stdin.readline().strip()
        if not key:
            print("contentstream api hash-key: no key on stdin", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    from schemas.errors import ConfigurationError
    from streams.api._runtime import run_api
    from streams.settings import load_settings

    try:
        return run_api(load_settings())
    except ConfigurationError as exc:
        print(f"contentstream api: {exc.message}", file=sys.stderr)
        return 2
