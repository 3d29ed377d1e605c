from pathlib import Path

import pytest

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
