from aiokafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

from streams.kafka.topics import _refusals


def test_created_and_already_existing_topics_are_not_refusals() -> None:
    assert _refusals([("a", 0, None), ("b", TopicAlreadyExistsError.errno, "exists")]) == []


def test_a_refusal_names_the_topic_the_error_and_the_brokers_message() -> None:
    errors = [("raw", InvalidReplicationFactorError.errno, "only 1 broker(s)"), ("out", 0, None)]
    assert _refusals(errors) == [("raw", "InvalidReplicationFactorError: only 1 broker(s)")]


def test_responses_without_messages_are_understood() -> None:
    # CreateTopics v0 answers (topic, error code) only.
    code = InvalidReplicationFactorError.errno
    assert _refusals([("raw", code)]) == [("raw", "InvalidReplicationFactorError")]
