"""Credentials out of anything printed or logged, control characters out of log lines.

``REDIS_URL=rediss://default:s3cret@host:6380/0`` is how managed Redis services hand out
their password, so a URL setting is a secret in part: :func:`mask_credentials` keeps the
scheme, user, host, port and path an operator needs to debug a connection and hides the
password (and password-like query arguments, which redis-py also reads). It works on
free text, so whole log lines and error messages can go through it.
"""

from __future__ import annotations

import re

MASK = "****"

# scheme://userinfo@ — the userinfo runs to the last "@" before the path, as urlsplit
# reads it, so a password holding an unescaped "@" is hidden whole.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#]*)@")
# ?password=... / &token=... (redis-py reads ?password= as the password).
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_\-.]*?)"
    r"(?:pass|pwd|secret|token|credential|api[_\-]?key|auth)[A-Za-z0-9_\-.]*=)"
    r"(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    # Without a colon the whole userinfo may be a token (https://TOKEN@host).
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{match['scheme']}{shown}@"


def mask_credentials(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``****``."""
    if "://" not in text and "=" not in text:
        return text  # the common log line: nothing to look at
    masked = _USERINFO.sub(_mask_userinfo, text) if "://" in text else text
    if "=" in masked:
        masked = _SECRET_QUERY.sub(lambda m: f"{m['key']}{MASK}", masked)
    return masked
