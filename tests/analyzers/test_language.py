import pytest

from analyzers.language import LanguageDetector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天天气很好，我们去公园。", "zh"),
        ("The service was great and the food was excellent.", "en"),
        ("我喜欢用iPhone拍照 and share photos with my friends online", "mixed"),
        ("这款手机的GPU性能很强", "zh"),
        ("Привет, как дела?", "other"),
        ("これはペンです。日本語の文章", "other"),
        ("안녕하세요 반갑습니다", "other"),
        ("12345 !!! ...", "other"),
        ("", "other"),
        ("😀😀 好开心", "zh"),
    ],
)
def test_detect(text: str, expected: str) -> None:
    assert LanguageDetector().detect(text) == expected


def test_batch_keeps_order_and_ignores_given_languages() -> None:
    detector = LanguageDetector()
    assert detector.analyze_batch(["你好世界", "hello world"], ["en", "zh"]) == ["zh", "en"]


def test_long_text_is_decided_by_its_beginning() -> None:
    text = "中文内容" * 1000 + "english words " * 10
    assert LanguageDetector().detect(text) == "zh"


def test_has_name_and_version() -> None:
    detector = LanguageDetector()
    assert detector.name == "language"
    assert detector.version
