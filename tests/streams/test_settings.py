from pathlib import Path

import pytest

from streams.commands.cli import main
from streams.settings import Settings, env_name, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_kafka_and_prefixed_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/1")
    monkeypatch.setenv("CONTENTSTREAM_IN_FLIGHT_LIMIT", "7")
    monkeypatch.setenv("CONTENTSTREAM_ANALYSES", "language, sentiment")
    s = load_settings()
    assert s.bootstrap_servers == ["a:1", "b:2"]
    assert s.redis_url == "redis://r:6379/1"
    assert s.in_flight_limit == 7
    assert [a.value for a in s.analyses] == ["language", "sentiment"]


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTENTSTREAM_DEDUP_POLICY", "sometimes")
    with pytest.raises(ValueError):
        load_settings()


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [env_name(n) for n in Settings.model_fields if f"`{env_name(n)}`" not in text]
    assert not missing, f"README lacks {missing}; paste `contentstream settings --markdown`"


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        (None, None, "auto"),
        ("CONTENTSTREAM_MODEL_PRECISION", "fp32", "fp32"),
        ("CONTENTSTREAM_MODEL_PRECISION", "BF16", "bf16"),
        # The earlier boolean setting keeps its meaning.
        ("CONTENTSTREAM_MODEL_BF16", "true", "bf16"),
        ("CONTENTSTREAM_MODEL_BF16", "0", "fp32"),
    ],
)
def test_model_precision_defaults_to_auto_and_reads_the_old_boolean(
    monkeypatch: pytest.MonkeyPatch, env: str | None, value: str | None, expected: str
) -> None:
    if env is not None and value is not None:
        monkeypatch.setenv(env, value)
    assert load_settings().model_precision == expected


def test_an_unknown_model_precision_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTENTSTREAM_MODEL_PRECISION", "fp16")
    with pytest.raises(ValueError, match=r"model_precision|CONTENTSTREAM_MODEL_PRECISION"):
        load_settings()


def test_settings_command_masks_the_password_in_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://default:s3cret@redis.example:6380/0")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert "hunter2" not in out
    (line,) = [line for line in out.splitlines() if line.startswith("REDIS_URL ")]
    # What an operator needs to debug the connection is still there.
    assert line.split()[1] == "rediss://default:****@redis.example:6380/0"


def test_repr_of_settings_masks_the_password_in_urls() -> None:
    settings = Settings(redis_url="redis://:s3cret@redis:6379/0")
    for text in (repr(settings), str(settings)):
        assert "s3cret" not in text
        assert "redis://:****@redis:6379/0" in text
    assert settings.redis_url == "redis://:s3cret@redis:6379/0"  # the client still gets it
