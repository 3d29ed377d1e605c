"""API keys: who may call, as which tenant, with which quota.

Keys are stored only as SHA-256 hashes (hex) in a JSON or YAML file (a Kubernetes
Secret mounted as a file, CONTENTSTREAM_API_KEYS_FILE)::

    keys:
      9f86d081884c7d65...: {tenant: acme, requests_per_s: 20, texts_per_s: 200}
      60303ae22b998861...: {tenant: globex}

(the ``keys:`` level may be left out). A presented key is hashed and compared with
every stored hash by :func:`hmac.compare_digest`, so neither the comparison nor a dict
lookup's early exit tells an attacker how much of a hash matched. Neither a key nor its
hash is ever logged or used as a metric label: requests are labelled by tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from schemas.errors import ConfigurationError

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose key it is and its limits (None = the configured default)."""

    name: str
    requests_per_s: float | None = None
    texts_per_s: float | None = None


def hash_key(key: str) -> str:
    """The hash a keys file stores for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _positive(entry: dict[str, Any], name: str, where: str) -> float | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{where}: {name} must be a positive number")
    return float(value)


def parse_keys(document: Any, where: str = "API keys") -> list[tuple[bytes, Tenant]]:
    """The (hash, tenant) pairs of a parsed keys file; ConfigurationError if malformed."""
    if isinstance(document, dict) and isinstance(document.get("keys"), dict):
        document = document["keys"]
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where}: expected a mapping of key hashes to tenants")
    entries: list[tuple[bytes, Tenant]] = []
    for digest, entry in document.items():
        if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
            # Never quote it: it may be a key pasted by mistake instead of its hash.
            raise ConfigurationError(
                f"{where}: entry #{len(entries) + 1} is not named by a SHA-256 hash (64 hex digits)"
            )
        if isinstance(entry, str):
            entry = {"tenant": entry}
        tenant = entry.get("tenant") if isinstance(entry, dict) else None
        if not isinstance(tenant, str) or not tenant or len(tenant) > 256:
            raise ConfigurationError(f"{where}: entry #{len(entries) + 1} has no valid tenant")
        assert isinstance(entry, dict)
        label = f"{where}: tenant {tenant}"
        entries.append(
            (
                digest.lower().encode("ascii"),
                Tenant(
                    tenant,
                    _positive(entry, "requests_per_s", label),
                    _positive(entry, "texts_per_s", label),
                ),
            )
        )
    return entries


def load_keys_file(path: Path) -> list[tuple[bytes, Tenant]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the API keys file {path}: {exc.strerror}") from None
    document: Any
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            import yaml

            document = yaml.safe_load(raw)
        except Exception as exc:
            raise ConfigurationError(
                f"the API keys file {path} is neither JSON nor YAML ({type(exc).__name__})"
            ) from None
    return parse_keys(document, str(path))


class KeyRing:
    """Finds the tenant of a presented bearer token.

    Built :meth:`from_file`, it reads the file again when it changes (checked at most
    every ``check_every_s``): keys are added and revoked without a restart, as a
    Kubernetes Secret mounted as a file is updated in place. A file that no longer
    parses is logged and ignored: the keys in use stay."""

    def __init__(
        self,
        entries: list[tuple[bytes, Tenant]],
        *,
        path: Path | None = None,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = entries
        self._path = path
        self._check_every = check_every_s
        self._clock = clock
        self._checked_at = clock()
        self._stamp = _stamp(path) if path is not None else None

    @classmethod
    def from_file(cls, path: Path, **kwargs: Any) -> KeyRing:
        return cls(load_keys_file(path), path=path, **kwargs)

    def _maybe_reload(self) -> None:
        now = self._clock()
        if self._path is None or now - self._checked_at < self._check_every:
            return
        self._checked_at = now
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            entries = load_keys_file(self._path)
        except ConfigurationError as exc:
            log.warning(
                "API keys file changed but was not loaded (%s); keeping the keys in use",
                exc.message,
            )
            return
        self._entries = entries
        log.info("API keys reloaded: %d key(s)", len(entries))

    def __len__(self) -> int:
        return len(self._entries)

    def tenant(self, token: str) -> Tenant | None:
        self._maybe_reload()
        presented = hash_key(token).encode("ascii")
        found: Tenant | None = None
        for digest, tenant in self._entries:
            # No early exit: the time taken does not depend on which entry matched.
            if hmac.compare_digest(presented, digest):
                found = tenant
        return found

    def authenticate(self, authorization: str | None) -> Tenant | None:
        """The tenant of an ``Authorization: Bearer <key>`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return self.tenant(token)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file: inode (a Secret update swaps a symlink), mtime, size."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
