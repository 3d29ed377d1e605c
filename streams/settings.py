"""All worker and CLI settings in one typed object, read from the environment.

Every field reads ``CONTENTSTREAM_<FIELD>`` except where Kafka or Redis have a name of
their own (``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``,
``KAFKA_SSL_*``, ``REDIS_URL``, ...). The README's settings table is generated from the
field descriptions here (``contentstream settings --markdown``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.events import (
    ALL_ANALYSES,
    DEFAULT_MAX_METADATA_BYTES,
    DEFAULT_MAX_METADATA_DEPTH,
    AnalysisName,
)
from streams.redaction import mask_credentials

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONTENTSTREAM_",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    # --- Kafka connection -------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=_env("KAFKA_SECURITY_PROTOCOL"),
        description="Kafka security.protocol.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SASL_MECHANISM"),
        description="Kafka sasl.mechanism when the protocol is SASL_*.",
    )
    kafka_sasl_username: str | None = Field(
        default=None, validation_alias=_env("KAFKA_SASL_USERNAME"), description="SASL user."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SASL_PASSWORD"),
        description="SASL password (mount it from a Secret).",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_CAFILE"),
        description="CA bundle (PEM) that signed the brokers' certificates.",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_CERTFILE"),
        description="Client certificate (PEM) for mutual TLS.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_KEYFILE"),
        description="Client private key (PEM) for mutual TLS.",
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        validation_alias=_env("KAFKA_SSL_CHECK_HOSTNAME"),
        description="Verify the broker's host name against its certificate.",
    )

    kafka_compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none",
        validation_alias=_env("KAFKA_COMPRESSION_TYPE"),
        description="Kafka compression.type of the results and dead letters the worker "
        "produces. Input in any of these codecs is always read.",
    )

    kafka_isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        default="read_committed",
        validation_alias=_env("KAFKA_ISOLATION_LEVEL"),
        description="Kafka isolation.level of the batch engine's consumer: read_committed "
        "never analyses records of aborted upstream transactions (always, under "
        "exactly_once). The Faust engine reads uncommitted: Faust picks the level itself.",
    )

    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        validation_alias=_env("KAFKA_AUTO_OFFSET_RESET"),
        description="Where a consumer group with no committed offset starts: earliest "
        "analyses the topic's whole retained history, latest only what arrives from now.",
    )

    # --- Redis ------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        validation_alias=_env("REDIS_URL"),
        description="redis:// or rediss:// URL for deduplication; unset = in-process LRU.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        validation_alias=_env("REDIS_PASSWORD"),
        description="Redis password when not in the URL.",
    )
    redis_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=_env("REDIS_SSL_CAFILE"),
        description="CA bundle for rediss:// connections.",
    )

    # --- Topics and group -------------------------------------------------------------
    app_id: str = Field(
        default="contentstream",
        description="The Kafka consumer group id (and the Faust app id).",
    )
    input_topic: str = Field(default="content.raw", description="Topic of raw ContentEvents.")
    output_topic: str = Field(
        default="content.analyzed", description="Topic the AnalysisResults are published to."
    )
    dead_letter_topic: str = Field(
        default="content.dlq", description="Topic for events that could not be processed."
    )
    forward_headers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("traceparent", "tracestate", "baggage"),
        description="Comma-separated input headers copied onto each event's result and dead "
        "letter (case-insensitive; empty: none). contentstream-* headers are never copied.",
    )
    forward_header_prefix: str = Field(
        default="x-",
        description="Input headers starting with this are copied too (case-insensitive; "
        "empty: none).",
    )
    topic_partitions: int = Field(
        default=8, ge=1, description="Partitions when the worker creates missing topics."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor when the worker creates topics."
    )

    # --- Input limits -----------------------------------------------------------------
    max_payload_bytes: int = Field(
        default=1_048_576, ge=1024, description="Larger raw records are dead-lettered unread."
    )
    max_text_chars: int = Field(
        default=100_000, ge=1, description="Longer texts are dead-lettered (TEXT_TOO_LONG)."
    )
    max_metadata_depth: int = Field(
        default=DEFAULT_MAX_METADATA_DEPTH,
        ge=1,
        le=200,
        description="Deeper event metadata (the object itself is level 1) is dead-lettered "
        "(METADATA_TOO_LARGE).",
    )
    max_metadata_bytes: int = Field(
        default=DEFAULT_MAX_METADATA_BYTES,
        ge=2,
        description="Event metadata larger than this as compact JSON is dead-lettered "
        "(METADATA_TOO_LARGE).",
    )

    # --- Analysis ---------------------------------------------------------------------
    analyses: Annotated[tuple[AnalysisName, ...], NoDecode] = Field(
        default=ALL_ANALYSES,
        description="Analyses run when an event does not list its own (comma-separated): "
        "built-in stages and any a plugin declares (README, Adding an analysis stage).",
    )
    sentiment_backend: Literal["builtin", "transformers"] = Field(
        default="builtin", description="builtin (shipped linear model) or transformers."
    )
    entities_backend: Literal["builtin", "transformers"] = Field(
        default="builtin", description="builtin (shipped tagger) or transformers."
    )
    sentiment_model: str | None = Field(
        default=None,
        description="Hugging Face sequence-classification model (local path or cached hub id).",
    )
    entities_model: str | None = Field(
        default=None,
        description="Hugging Face token-classification model (local path or cached hub id).",
    )
    model_device: str = Field(default="cpu", description="torch device: cpu, cuda, cuda:0.")
    model_batch_size: int = Field(
        default=32, ge=1, description="Largest micro-batch for the transformers stage."
    )
    model_batch_tokens: int = Field(
        default=8192,
        ge=8,
        description="Largest transformers micro-batch in padded tokens (texts x the longest "
        "one's tokens); texts are batched by length bucket, so short ones never pad to "
        "long ones. At least model_max_length. On a GPU raise it with model_batch_size "
        "(e.g. 65536 and 512).",
    )
    model_device_processes: int = Field(
        default=1,
        ge=1,
        description="Analyzer processes when a transformers model runs on a GPU "
        "(model_device not cpu) and pool_processes is 0: each loads its own copy of the "
        "model on the device; one process with large batches keeps the GPU busy.",
    )
    model_batch_wait_ms: float = Field(
        default=10.0, ge=0, description="Longest wait to fill a transformers micro-batch."
    )
    model_max_length: int = Field(
        default=256, ge=8, description="Tokens per text for transformers (truncated)."
    )
    model_precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        validation_alias=AliasChoices("CONTENTSTREAM_MODEL_PRECISION", "CONTENTSTREAM_MODEL_BF16"),
        description="transformers weights: bf16 or fp32; auto = bf16 where the device runs "
        "it natively (AVX512-BF16/AMX CPUs, recent GPUs), else fp32. The earlier "
        "CONTENTSTREAM_MODEL_BF16=true/false is still read.",
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads per pool process."
    )
    pipeline_factory: str | None = Field(
        default=None,
        description="module:function building a custom AnalysisPipeline from a "
        "PipelineConfig (your own analyzers); unset = the built-in pipeline. Every process "
        "imports the module first, so the stages it declares are known everywhere.",
    )
    keywords_top_k: int = Field(default=10, ge=1, description="Keywords per event.")
    keywords_max_chars: int = Field(
        default=64,
        ge=2,
        description="Longest keyword in characters; longer candidates are dropped.",
    )
    summary_max_chars: int = Field(
        default=120, ge=10, description="Longest summary in characters, whatever the text."
    )
    entities_max_per_event: int = Field(
        default=1000,
        ge=0,
        description="Most entities in one result: the first by offset are kept and the cut is "
        "reported in `errors` (RESULT_TRUNCATED).",
    )
    entities_max_chars: int = Field(
        default=100, ge=2, description="Longest entity in characters; longer ones are dropped."
    )

    # --- Concurrency and semantics ----------------------------------------------------
    pool_processes: int = Field(
        default=0,
        ge=0,
        description="Analyzer worker processes; 0 = one per CPU core.",
    )
    pool_standby_processes: int = Field(
        default=1,
        ge=0,
        description="Warm spare analyzer processes that take over at once when one is "
        "killed (hung analysis, crash).",
    )
    pool_queue_depth: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Analysis batches given to each analyzer process at once. With 2, the "
        "next full batch already waits in the process's socket, so it never idles between "
        "batches (7 % of its time at saturation with 1): worth it where the analyzer "
        "processes have cores to themselves; where all cores are busy the time goes to "
        "other processes and throughput does not change (measured on 2 cores).",
    )
    pool_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="Scheduling niceness of analyzer processes, so the event loop wins "
        "the CPU (heartbeats) when cores are short.",
    )
    engine: Literal["batch", "faust"] = Field(
        default="batch",
        description="batch: an aiokafka consumer that hands each polled batch to the "
        "processor; faust: a Faust agent that takes batches and hands them to the same "
        "processor (at_least_once only: exactly_once runs on batch).",
    )
    in_flight_limit: int = Field(
        default=256, ge=1, description="Events being processed at once by one worker."
    )
    analysis_batch_size: int = Field(
        default=64, ge=1, description="Events sent to a pool process in one batch."
    )
    analysis_batch_wait_ms: float = Field(
        default=5.0, ge=0, description="Longest wait to fill an analysis batch."
    )
    stage_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline for analysing one event."
    )
    refused_record_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="How long records Kafka refuses as they are (larger than the topic's "
        "max.message.bytes) are retried, in case the limit is raised, before a refused "
        "result becomes a RESULT_REJECTED dead letter and a refused dead letter goes out "
        "without the original bytes.",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Tries for a retriable failure before dead-lettering."
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="exactly_once uses Kafka transactions (costs latency and throughput).",
    )
    commit_interval_s: float = Field(
        default=1.0, gt=0, description="How often processed offsets are committed."
    )
    shutdown_timeout_s: float = Field(
        default=25.0, gt=0, description="On SIGTERM, time allowed to finish in-flight events."
    )

    # --- Deduplication ----------------------------------------------------------------
    dedup_policy: Literal["reuse", "drop", "off"] = Field(
        default="reuse",
        description="reuse: publish the stored analysis marked duplicate_of; drop: publish "
        "nothing for repeats; off: analyse everything.",
    )
    dedup_scope: Literal["tenant", "global"] = Field(
        default="tenant",
        description="tenant: an analysis is reused only for the same tenant (and language "
        "hint, and exact text); global: across tenants too, then duplicate_of is null when "
        "the first event was another tenant's.",
    )
    dedup_ttl_s: int = Field(default=86_400, ge=1, description="How long an analysis is kept.")
    dedup_compress: bool = Field(
        default=False,
        description="zlib-compress analyses stored in Redis: about a third of the memory, "
        "for ~10-20 µs of worker CPU per event. Either kind is read back.",
    )
    dedup_lru_size: int = Field(
        default=100_000, ge=1, description="Entries in the in-process store without Redis."
    )

    # --- HTTP API (contentstream api, streams/api) --------------------------------------
    api_host: str = Field(
        default="127.0.0.1", description="Address the HTTP API listens on (0.0.0.0 in containers)."
    )
    api_port: int = Field(default=8080, ge=0, description="Port of the HTTP API.")
    api_keys_file: Path | None = Field(
        default=None,
        description="JSON or YAML file mapping SHA-256 hashes (hex) of API keys to "
        '{"tenant": ..., "requests_per_s": ..., "texts_per_s": ...}; the API refuses to '
        "start without it.",
    )
    api_max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Larger request bodies answer 413."
    )
    api_max_texts: int = Field(
        default=256, ge=1, description="Most texts (or events) in one request; more answer 413."
    )
    api_max_texts_in_flight: int = Field(
        default=512,
        ge=1,
        description="Texts in analysis at once in one API process; a request past it answers "
        "503 with Retry-After at once instead of queueing.",
    )
    api_tenant_max_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of CONTENTSTREAM_API_MAX_TEXTS_IN_FLIGHT one tenant may hold, so "
        "one tenant's flood leaves room for the others.",
    )
    api_request_timeout_s: float = Field(
        default=15.0, gt=0, description="Deadline of one request; past it 504 naming the stage."
    )
    api_requests_per_s: float = Field(
        default=50.0, gt=0, description="Default per-tenant request rate (all replicas)."
    )
    api_texts_per_s: float = Field(
        default=500.0, gt=0, description="Default per-tenant rate of texts or events."
    )
    api_burst_s: float = Field(
        default=1.0,
        gt=0,
        description="Burst allowance of the per-tenant limits, in seconds of their rate.",
    )

    # --- Operations -------------------------------------------------------------------
    web_host: str = Field(
        default="127.0.0.1",
        description="Address of the metrics/health HTTP server (0.0.0.0 in containers).",
    )
    web_port: int = Field(default=6066, ge=0, description="Port of /metrics, /healthz, /readyz.")
    stuck_partition_s: float = Field(
        default=120.0, gt=0, description="Lag with no commit progress this long = not ready."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="json lines, text, or auto (text on a terminal)."
    )
    data_dir: Path = Field(
        default=Path("../shared/data"),
        description="Labelled data for training and evaluation (never needed at run time).",
    )

    @field_validator("model_precision", mode="before")
    @classmethod
    def _precision_from_boolean(cls, value: object) -> object:
        # CONTENTSTREAM_MODEL_BF16 was a boolean: true asked for bf16, false for fp32.
        if isinstance(value, bool):
            return "bf16" if value else "fp32"
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE_WORDS:
                return "bf16"
            if lowered in _FALSE_WORDS:
                return "fp32"
            return lowered
        return value

    @field_validator("forward_headers", mode="before")
    @classmethod
    def _split_headers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("analyses", mode="before")
    @classmethod
    def _split_analyses(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="before")
    @classmethod
    def _declare_added_stages(cls, data: Any) -> Any:
        # CONTENTSTREAM_ANALYSES (and events) may name stages a plugin declares: import
        # the modules that declare them before the names are checked.
        from analyzers.stages import load_plugins

        factory = data.get("pipeline_factory") if isinstance(data, dict) else None
        load_plugins(factory if isinstance(factory, str) else None)
        return data

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr(settings) ends up in logs and tracebacks: no password of a URL setting.
        for name, value in super().__repr_args__():
            yield name, mask_credentials(value) if isinstance(value, str) else value

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def producer_compression(self) -> str | None:
        """``compression_type`` for aiokafka and Faust producers (None = uncompressed)."""
        codec = self.kafka_compression_type
        return None if codec == "none" else codec

    @property
    def effective_engine(self) -> Literal["batch", "faust"]:
        # Kafka transactions are the batch engine's (the worker refuses faust with them).
        return "batch" if self.processing_guarantee == "exactly_once" else self.engine

    @property
    def effective_pool_processes(self) -> int:
        import os

        if self.pool_processes:
            return self.pool_processes
        if self.model_device != "cpu" and "transformers" in (
            self.sentiment_backend,
            self.entities_backend,
        ):
            # Every pool process would hold its own copy of the model on the device and
            # time-share it: see the README's "Transformers on a GPU".
            return self.model_device_processes
        return os.cpu_count() or 1


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        if isinstance(first, str):
            return first
    return f"CONTENTSTREAM_{field_name.upper()}"


def env_names() -> set[str]:
    """Every environment variable a Settings field reads."""
    return {env_name(name) for name in Settings.model_fields}


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (for the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
