"""``contentstream settings``: every setting, its environment variable and value."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import SecretStr

from streams.redaction import mask_credentials
from streams.settings import Settings, env_name, load_settings


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "settings",
        help="show the settings and their environment variables",
        description="Prints every setting with the environment variable that sets it, its "
        "default and (without --markdown) its current value. Secrets, and the "
        "passwords in URL settings such as REDIS_URL, are masked.",
    )
    p.add_argument("--markdown", action="store_true", help="the README's table of defaults")
    p.set_defaults(func=run)


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "****" if value.get_secret_value() else ""
    if isinstance(value, tuple):
        return mask_credentials(",".join(str(v) for v in value))
    return "" if value is None else mask_credentials(str(value))


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        shown = _show(default)
        rows.append(
            f"| `{env_name(name)}` | {f'`{shown}`' if shown else '—'} | {field.description or ''} |"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    settings = load_settings()
    width = max(len(env_name(n)) for n in Settings.model_fields)
    for name in Settings.model_fields:
        print(f"{env_name(name):<{width}}  {_show(getattr(settings, name))}")
    return 0
