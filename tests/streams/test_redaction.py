"""streams/redaction.py: no password of a URL reaches a terminal or a log."""

from __future__ import annotations

import pytest

from streams.commands.cli import main
from streams.redaction import mask_credentials
from streams.security import describe_connection_error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:****@redis:6379/0"),
        ("rediss://default:s3cret@host:6380/1", "rediss://default:****@host:6380/1"),
        # urlsplit reads the userinfo up to the last "@": all of the password is hidden.
        ("redis://user:p@ss@host/0", "redis://user:****@host/0"),
        # No colon: the userinfo may be a token.
        ("https://ghp_token@example.com/x", "https://****@example.com/x"),
        # redis-py reads ?password= too.
        ("redis://host/0?password=s3cret&db=2", "redis://host/0?password=****&db=2"),
        (
            "cannot reach redis://a:x@h1/0 nor redis://b:y@h2/0",
            "cannot reach redis://a:****@h1/0 nor redis://b:****@h2/0",
        ),
        # Nothing to hide: unchanged.
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("user@example.com wrote x=1", "user@example.com wrote x=1"),
        ("", ""),
    ],
)
def test_mask_credentials(text: str, expected: str) -> None:
    assert mask_credentials(text) == expected


def test_connection_error_messages_hide_the_url_password() -> None:
    exc = ValueError("bad Redis URL redis://admin:s3cret@redis:6379/x")
    message = describe_connection_error(exc)
    assert "s3cret" not in message
    assert "redis://admin:****@redis:6379/x" in message


def test_invalid_settings_are_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An invalid value is quoted by pydantic: the URL's password must not be.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:1")
    monkeypatch.setenv("CONTENTSTREAM_APP_ID", "group")
    monkeypatch.setenv("CONTENTSTREAM_MODEL_DEVICE", "cpu")
    monkeypatch.setenv("CONTENTSTREAM_TOPIC_PARTITIONS", "redis://u:s3cret@h/0")
    assert main(["settings"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contentstream: invalid settings:")
    assert "s3cret" not in err
    assert "redis://u:****@h/0" in err
