"""``contentstream worker``: consume raw events, publish analyses."""

from __future__ import annotations

import argparse
from typing import Any

from streams.settings import load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run a worker of the consumer group",
        description="Run one worker. Start more (same CONTENTSTREAM_APP_ID) to scale out; "
        "every setting comes from the environment (see the README).",
    )
    p.add_argument("--processes", type=int, help="analyzer processes (default: one per core)")
    p.add_argument("--web-port", type=int, help="port of /metrics, /healthz, /readyz")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    overrides: dict[str, Any] = {}
    if args.processes is not None:
        overrides["pool_processes"] = args.processes
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    run_worker(load_settings(**overrides))
    return 0
