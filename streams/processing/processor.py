"""What happens to one fetched batch of raw records: decode, dedup, analyse, publish.

The one processor of both engines: the batch engine (streams/engines/batch.py) hands
over everything one poll returned, the Faust engine (streams/engines/faust_agent.py)
each batch its agent took. Per-event work is plain Python over lists; the costly steps
happen once per batch: one Redis MGET, analysis requests queued together, results
published as soon as each pool batch finishes (so a hung analysis holds back only its
own events), one Redis pipeline for the analyses worth remembering.

Guarantees:
- every record ends as a result, a partial result, a reused analysis, a deliberate drop
  (dedup policy ``drop``) or a dead letter; :meth:`BatchProcessor.process` returns once
  all of its outputs are acknowledged by Kafka, and never raises for a bad event:
  whatever fails for one event (its decoding, its result, a bug) becomes that event's
  dead letter (INTERNAL_ERROR when no other code fits) and the rest of the batch goes
  on; only Kafka being away is waited out (retried, never dropped);
- results of one event id leave in the order the events arrived, across batches;
- a text is analysed once even when repeats of it are in flight at the same time: the
  first claims it, later ones (in this batch or later batches) reuse its result.
  Claims only ever point from a later batch to an earlier one, because batches
  register them in arrival order, so waiting on a claim cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson

from analyzers.pipeline import AnalysisRequest
from schemas.content_hash import content_hash
from schemas.dead_letter import HEADER_NAMES
from schemas.errors import (
    ContentStreamError,
    EventRejected,
    ResultRejected,
    StageTimeout,
)
from schemas.events import AnalysisName, ContentEvent
from streams.analysis.batcher import Deliver
from streams.analysis.batcher import Outcome as AnalysisOutcome
from streams.kafka.clients import RECORD_REFUSALS
from streams.kafka.headers import (
    DEFAULT_FORWARD_HEADERS,
    DEFAULT_FORWARD_PREFIX,
    HeaderForwarding,
    OwnHeaders,
    with_trace,
)
from streams.kafka.publisher import PartlyPublished
from streams.kafka.records import Headers, InputRecord, Outgoing
from streams.kafka.transactions import BatchOutputs, Buffered
from streams.operations.metrics import WorkerMetrics, observe_values
from streams.operations.tracing import DEDUP_SPAN, NO_TRACING, PUBLISH_SPAN, BatchTrace, Tracing
from streams.processing.dead_letters import build_dead_letter, log_dead_letter
from streams.processing.decoding import EventDecoder
from streams.processing.dedup import BatchDedupKeys, BulkDedupStore, DedupScope
from streams.processing.results import (
    analysis_failure,
    build_result,
    internal_error,
    produced_at_s,
    result_key,
    reuse_result,
    timeout_fields,
    worth_remembering,
)

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    DEAD_LETTERED = "dead_lettered"
    DUPLICATE = "duplicate"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    output_topic: str
    default_analyses: tuple[AnalysisName, ...]
    dedup_policy: str = "reuse"  # reuse | drop | off
    dedup_scope: DedupScope = "tenant"  # tenant | global: who may share an analysis
    max_attempts: int = 3
    retry_backoff_s: float = 0.2


DROPPED_HEADER = HEADER_NAMES["original_dropped"]

# Longest stretch the intake of one batch keeps the event loop (heartbeats, /healthz).
INTAKE_SLICE_S = 0.005
# Decoding and validating go a run of events at a time (EventDecoder.decode_many).
DECODE_CHUNK_EVENTS = 64
DECODE_CHUNK_BYTES = 64 * 1024


class Publisher(Protocol):
    """Sends records in order; returns once Kafka acknowledged all, raises if not."""

    async def publish(self, messages: list[Outgoing]) -> None: ...


class AnalysisQueue(Protocol):
    def submit_many(
        self, requests: list[tuple[int, AnalysisRequest]], deliver: Deliver
    ) -> None: ...


@dataclass(slots=True, eq=False)
class _Item:
    index: int
    record: InputRecord
    event: ContentEvent | None = None
    analyses: tuple[AnalysisName, ...] = ()
    chash: str = ""
    dkey: str | None = None
    key: bytes = b""  # of its result: the event id
    # Created only when a later event of the same id arrives while this one is
    # unpublished; done once this item's output is acknowledged (or it has none).
    turn: asyncio.Future[None] | None = None
    after: asyncio.Future[None] | None = None  # the turn of the previous same-id event
    claim: asyncio.Future[bytes | None] | None = None  # set when this item claimed dkey
    awaits: asyncio.Future[bytes | None] | None = None  # an earlier batch's claim
    followers: list[_Item] = field(default_factory=list)
    attempts: int = 0
    remember: bool = False  # its result may be reused for a repeat of its text
    trace: BatchTrace | None = None  # its batch's spans, when tracing is on
    taken_at: float = 0.0  # time.monotonic() when process() took its record in

    def turn_future(self) -> asyncio.Future[None]:
        if self.turn is None:
            self.turn = asyncio.get_running_loop().create_future()
        return self.turn

    def request(self) -> AnalysisRequest:
        assert self.event is not None
        return AnalysisRequest(
            text=self.event.text,
            analyses=_frozen(self.analyses),
            language_hint=self.event.language,
        )


@functools.lru_cache(maxsize=256)
def _frozen(analyses: tuple[AnalysisName, ...]) -> frozenset[AnalysisName]:
    return frozenset(analyses)


# What one item becomes: a message (or None for a deliberate drop) and an outcome.
_Output = tuple[_Item, Outgoing | None, Outcome]

# The buffer of the batch being processed, under exactly_once (BatchProcessor.process):
# a context variable, so that every task the batch spawns delivers into its own batch's.
_BATCH_OUTPUTS: contextvars.ContextVar[BatchOutputs | None] = contextvars.ContextVar(
    "contentstream_batch_outputs", default=None
)


class BatchProcessor:
    def __init__(
        self,
        *,
        config: ProcessorConfig,
        decoder: EventDecoder,
        analysis: AnalysisQueue,
        publisher: Publisher,
        dead_letter_topic: str,
        max_peek_bytes: int,
        dedup: BulkDedupStore | None,
        metrics: WorkerMetrics,
        analyzer_versions: Callable[[], dict[str, str]],
        recent_entries: int = 8192,
        publish_backoff_s: float = 0.5,
        max_publish_backoff_s: float = 10.0,
        refused_record_grace_s: float = 60.0,
        forwarding: HeaderForwarding | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.config = config
        self._forwarding = forwarding or HeaderForwarding(
            DEFAULT_FORWARD_HEADERS, (DEFAULT_FORWARD_PREFIX,)
        )
        self._own = OwnHeaders()
        self._tracing = tracing
        self._decoder = decoder
        self._analysis = analysis
        self._publisher = publisher
        self._dlq_topic = dead_letter_topic
        self._max_peek = max_peek_bytes
        self._dedup = dedup if config.dedup_policy != "off" else None
        self._metrics = metrics
        self._versions = analyzer_versions
        self._backoff = publish_backoff_s
        self._max_backoff = max_publish_backoff_s
        self._refusal_grace = refused_record_grace_s
        self._key_tails: dict[bytes, _Item] = {}  # per id, its latest unpublished event
        self._analysing: dict[str, asyncio.Future[bytes | None]] = {}
        # Analyses this worker stored lately: a repeat right after the first is served
        # without a Redis round trip, and never misses a store still on its way.
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_max = recent_entries
        self._registered: asyncio.Future[None] | None = None
        self._intake = asyncio.Lock()

    # ------------------------------------------------------------------ the batch

    async def process(
        self, records: list[InputRecord], *, outputs: BatchOutputs | None = None
    ) -> Counter[Outcome]:
        """Handle ``records`` (in arrival order); returns the count of each outcome.

        With ``outputs`` (exactly_once: streams/kafka/transactions.py) nothing is
        published: each message is appended to ``outputs.messages``, in the order it would have been
        published, with the rule for replacing it if Kafka refuses it, and counts as
        published for per-id order. The engine commits ``outputs`` in the partition's
        transaction, then runs ``outputs.on_commit``: only then are the batch's analyses
        remembered for dedup. Repeats already waiting on one of them in this worker
        reuse it before that commit: their own results commit in their own batches, and
        if the first one's transaction aborts it is processed again and committed."""
        token = _BATCH_OUTPUTS.set(outputs)
        try:
            return await self._process(records)
        finally:
            _BATCH_OUTPUTS.reset(token)

    async def _process(self, records: list[InputRecord]) -> Counter[Outcome]:
        outcomes: Counter[Outcome] = Counter()
        taken_at = time.monotonic()
        items = [_Item(i, r, taken_at=taken_at) for i, r in enumerate(records)]
        for topic, n in Counter(r.topic for r in records).items():
            self._metrics.events_consumed.labels(topic=topic).inc(n)
        trace = self._tracing.batch(records)
        if trace is not None:
            for item in items:
                item.trace = trace

        try:
            rejected, events, previous_registration, registered = await self._take_in(items)
            try:
                if trace is not None and self._dedup is not None and events:
                    with trace.child(DEDUP_SPAN, events=len(events)):
                        stored = await self._lookup(events)
                else:
                    stored = await self._lookup(events)
                if previous_registration is not None:
                    await asyncio.shield(previous_registration)
                to_analyse, waiting, ready = self._register(events, stored)
            finally:
                registered.set_result(None)
                if self._registered is registered:
                    self._registered = None

            first: list[_Output] = [self._rejection(i, exc, "decode") for i, exc in rejected]
            first += ready
            publishes = [self._publish(first, outcomes)]
            if waiting:
                publishes.append(self._wait_for_claims(waiting, outcomes))
            if to_analyse:
                publishes.append(self._analyse(to_analyse, outcomes))
            await asyncio.gather(*publishes)
        finally:
            self._release(items)
            if trace is not None:
                trace.end({o.value: n for o, n in outcomes.items()})
        for outcome, n in outcomes.items():
            self._metrics.events_finished.labels(outcome=outcome.value).inc(n)
        return outcomes

    async def _take_in(
        self, items: list[_Item]
    ) -> tuple[
        list[tuple[_Item, ContentStreamError]],
        list[_Item],
        asyncio.Future[None] | None,
        asyncio.Future[None],
    ]:
        """Decode, hash and queue each item behind earlier events of its id."""
        loop = asyncio.get_running_loop()
        rejected: list[tuple[_Item, ContentStreamError]] = []
        events: list[_Item] = []
        # Batches take their turn here in arrival order (the lock is FIFO), so per-id
        # order and claims follow arrival even though a batch of long texts yields
        # the loop part-way (decoding and hashing cost ~0.1 ms per 1,000 characters).
        async with self._intake:
            started = time.perf_counter()
            for chunk in _decode_chunks(items):
                if time.perf_counter() - started > INTAKE_SLICE_S:
                    await asyncio.sleep(0)
                    started = time.perf_counter()
                decoded = self._decode(chunk)
                for item, event in zip(chunk, decoded, strict=True):
                    if isinstance(event, ContentStreamError):
                        rejected.append((item, event))
                        continue
                    try:
                        key = result_key(event.id)
                        item.analyses = (
                            tuple(event.analyses)
                            if event.analyses
                            else self.config.default_analyses
                        )
                        item.chash = content_hash(event.text)
                    except Exception as exc:
                        rejected.append((item, internal_error("reading the event", exc, "decode")))
                        continue
                    item.event = event
                    item.key = key
                    events.append(item)
                    previous = self._key_tails.get(key)  # present = not yet published
                    if previous is not None:
                        item.after = previous.turn_future()
                    self._key_tails[key] = item
            # Registration happens in arrival order too (see the module doc).
            previous_registration = self._registered
            registered: asyncio.Future[None] = loop.create_future()
            self._registered = registered
        return rejected, events, previous_registration, registered

    def _decode(self, chunk: list[_Item]) -> list[ContentEvent | ContentStreamError]:
        values = [item.record.value for item in chunk]
        try:
            return list(self._decoder.decode_many(values))
        except Exception:
            log.exception(
                "decoding a run of %d records failed; decoding them one by one", len(values)
            )
        decoded: list[ContentEvent | ContentStreamError] = []
        for value in values:
            try:
                decoded.append(self._decoder.decode(value))
            except EventRejected as exc:
                decoded.append(exc)
            except Exception as exc:  # the decoder's bug, not the producer's fault
                decoded.append(internal_error("decoding", exc, "decode"))
        return decoded

    def _end_turn(self, item: _Item, *, published: bool) -> None:
        """``item``'s output is out (or it has none): a later same-id event may go."""
        if published or item.after is None or item.after.done():
            if self._key_tails.get(item.key) is item:
                del self._key_tails[item.key]
            if item.turn is not None and not item.turn.done():
                item.turn.set_result(None)
            return
        # Nothing of its own went out, but it stands for its predecessor: a later
        # same-id event must still wait for that one.
        item.after.add_done_callback(lambda _: self._end_turn(item, published=True))

    def _release(self, items: list[_Item]) -> None:
        """Nothing this batch holds may outlive it (also when it is cancelled)."""
        for item in items:
            if item.claim is not None and not item.claim.done():
                item.claim.set_result(None)
            if (
                item.claim is not None
                and item.dkey is not None
                and self._analysing.get(item.dkey) is item.claim
            ):
                del self._analysing[item.dkey]
            if item.event is not None:
                self._end_turn(item, published=True)

    # ------------------------------------------------------------------ dedup

    async def _lookup(self, events: list[_Item]) -> dict[str, bytes]:
        if self._dedup is None or not events:
            return {}
        keys = BatchDedupKeys(self._versions(), self.config.dedup_scope)
        wanted: list[str] = []
        for item in events:
            event = item.event
            assert event is not None
            item.dkey = keys.key(event.text, event.tenant, event.language, item.analyses)
            if item.dkey not in self._recent:
                wanted.append(item.dkey)
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return {}
        try:
            values = await self._dedup.get_many(unique)
        except Exception:  # stores never raise by contract; an outage means "analyse"
            log.debug("dedup lookup failed", exc_info=True)
            return {}
        return {k: v for k, v in zip(unique, values, strict=True) if v is not None}

    def _register(
        self, events: list[_Item], stored: dict[str, bytes]
    ) -> tuple[list[_Item], list[_Item], list[_Output]]:
        """Split events into: analyse now, wait for an earlier claim, answer now."""
        if self._dedup is None:
            return events, [], []
        to_analyse: list[_Item] = []
        waiting: list[_Item] = []
        ready: list[_Output] = []
        leaders: dict[str, _Item] = {}
        hits = 0
        for item in events:
            dkey = item.dkey
            assert dkey is not None
            value = self._recent.get(dkey) or stored.get(dkey)
            reused = self._reused(item, value) if value is not None else None
            if reused is not None:
                hits += 1
                ready.append(reused)
            elif dkey in leaders:
                leaders[dkey].followers.append(item)
            elif dkey in self._analysing:
                item.awaits = self._analysing[dkey]
                waiting.append(item)
            else:
                item.claim = asyncio.get_running_loop().create_future()
                self._analysing[dkey] = item.claim
                leaders[dkey] = item
                to_analyse.append(item)
        # Repeats waiting for an analysis in flight count when they are answered.
        self._metrics.dedup_hits.inc(hits)
        self._metrics.dedup_misses.inc(len(to_analyse))
        return to_analyse, waiting, ready

    def _reused(self, item: _Item, value: bytes) -> _Output | None:
        """The output of a repeat that reuses ``value``; None when ``value`` cannot be
        reused (the event is analysed instead)."""
        assert item.event is not None
        if self.config.dedup_policy == "drop":
            return item, None, Outcome.DROPPED
        reused = reuse_result(value, item.event)
        if reused is None:
            return None
        message = Outgoing(self.config.output_topic, item.key, reused, self._result_headers(item))
        return item, message, Outcome.DUPLICATE

    async def _wait_for_claims(self, waiting: list[_Item], outcomes: Counter[Outcome]) -> None:
        """Repeats of texts an earlier batch is analysing: reuse its result, or analyse
        them here if it has none worth reusing (a timeout, a dead letter)."""
        claims = {item.awaits for item in waiting if item.awaits is not None}
        await asyncio.gather(*(asyncio.shield(c) for c in claims))
        ready: list[_Output] = []
        again: list[_Item] = []
        for item in waiting:
            value = item.awaits.result() if item.awaits is not None else None
            reused = self._reused(item, value) if value is not None else None
            if reused is not None:
                ready.append(reused)
            else:
                again.append(item)
        self._metrics.dedup_hits.inc(len(ready))
        self._metrics.dedup_misses.inc(len(again))
        await asyncio.gather(self._publish(ready, outcomes), self._analyse(again, outcomes))

    async def _store(self, stored: list[tuple[str, bytes]]) -> None:
        if self._dedup is not None and stored:
            try:
                await self._dedup.put_many(stored)
            except Exception:  # a lost store costs one re-analysis later, no more
                log.debug("dedup store failed", exc_info=True)

    async def _store_committed(self, stored: list[tuple[str, bytes]]) -> None:
        await self._store(stored)
        self._remember([], stored)

    def _remember(
        self, leaders: list[tuple[_Item, bytes | None]], stored: list[tuple[str, bytes]]
    ) -> None:
        """Settle the leaders' claims (repeats waiting on them go on) and keep the
        ``stored`` analyses at hand for later repeats."""
        for dkey, value in stored:
            self._recent[dkey] = value
            self._recent.move_to_end(dkey)
        for item, answer in leaders:
            if item.dkey is None or item.claim is None:
                continue
            if not item.claim.done():
                item.claim.set_result(answer)
            if self._analysing.get(item.dkey) is item.claim:
                del self._analysing[item.dkey]
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------------ analysis

    async def _analyse(self, items: list[_Item], outcomes: Counter[Outcome]) -> None:
        if not items:
            return
        queue: asyncio.Queue[list[tuple[int, AnalysisOutcome]]] = asyncio.Queue()
        by_index = {item.index: item for item in items}
        self._submit(items, queue.put_nowait)
        remaining = len(items)
        publishes: list[asyncio.Task[None]] = []
        retries: list[asyncio.Task[None]] = []
        try:
            while remaining:
                chunk = await queue.get()
                self._observe_timings(chunk, items[0].trace)
                outputs: list[_Output] = []
                retry: list[_Item] = []
                finished_at = datetime.now(UTC).isoformat()
                for index, result in chunk:
                    item = by_index[index]
                    try:
                        output = self._analysed(item, result, finished_at)
                    except Exception as exc:  # e.g. orjson refusing what the event carries
                        output = self._rejection(
                            item, internal_error("building its result", exc, "result"), "result"
                        )
                    if output is None:
                        retry.append(item)
                        continue
                    remaining -= 1
                    outputs.append(output)
                if retry:
                    retries.append(_spawn(self._retry_later(retry, queue.put_nowait)))
                if outputs:
                    publishes.append(_spawn(self._publish_analysed(outputs, outcomes)))
            await asyncio.gather(*publishes)
        finally:
            for task in (*publishes, *retries):
                task.cancel()

    def _observe_timings(
        self, chunk: list[tuple[int, AnalysisOutcome]], trace: BatchTrace | None
    ) -> None:
        # Events of one pool batch carry the same per-stage timings (batch averages).
        groups: Counter[tuple[tuple[str, float], ...]] = Counter()
        try:
            for _, result in chunk:
                if not isinstance(result, BaseException):
                    groups[tuple(result.get("timings_ms", {}).items())] += 1
            for timings, n in groups.items():
                self._metrics.observe_stages(dict(timings), n)
        except Exception:  # metrics only: never worth an event
            log.debug("stage timings not observed", exc_info=True)
        if trace is None or not groups:
            return
        try:
            end_ns = time.time_ns()
            versions = self._versions()
            for timings, n in groups.items():
                trace.stages(dict(timings), versions, n, end_ns)
        except Exception:  # tracing only: never worth an event
            log.debug("stage spans not recorded", exc_info=True)

    def _submit(self, items: list[_Item], deliver: Deliver) -> None:
        self._metrics.analyzer_calls.inc(len(items))
        for item in items:
            item.attempts += 1
        self._analysis.submit_many([(item.index, item.request()) for item in items], deliver)

    async def _retry_later(self, items: list[_Item], deliver: Deliver) -> None:
        self._metrics.retries.inc(len(items))
        attempt = max(item.attempts for item in items)
        delay = self.config.retry_backoff_s * (2 ** (attempt - 1))
        log.warning("retrying the analysis of %d event(s) in %.2fs", len(items), delay)
        await asyncio.sleep(delay * (0.5 + random.random()))
        self._submit(items, deliver)

    def _analysed(self, item: _Item, result: AnalysisOutcome, finished_at: str) -> _Output | None:
        """The output of one analysis outcome, or None to try it again."""
        assert item.event is not None
        if isinstance(result, StageTimeout):
            # A hang is a property of the text: publish what we know, with the reason.
            fields = timeout_fields(item.request(), result)
        elif isinstance(result, BaseException):
            error = analysis_failure(result, item.attempts, self.config.max_attempts)
            if error is None:
                return None
            return self._rejection(item, error, error.stage or "analysis")
        else:
            fields = result
        body = build_result(item.event, item.chash, item.analyses, fields, finished_at)
        value = orjson.dumps(body)
        headers = self._result_headers(item, body["analyzer_versions"])
        message = Outgoing(self.config.output_topic, item.key, value, headers)
        item.remember = worth_remembering(body)
        return item, message, Outcome.PARTIAL if body["errors"] else Outcome.OK

    async def _publish_analysed(self, outputs: list[_Output], outcomes: Counter[Outcome]) -> None:
        """Publish analysed events and the in-batch repeats that reuse them, then
        remember the analyses (only after Kafka has them: a crash before that point
        reprocesses the event rather than remembering an unpublished analysis)."""
        leaders: list[tuple[_Item, bytes | None]] = []
        again: list[_Item] = []
        batch = list(outputs)
        for item, message, _ in outputs:
            value = message.value if message is not None and item.remember else None
            leaders.append((item, value))
            for follower in item.followers:
                reused = self._reused(follower, value) if value is not None else None
                if reused is not None:
                    batch.append(reused)
                    self._metrics.dedup_hits.inc()
                else:
                    again.append(follower)
                    self._metrics.dedup_misses.inc()
        await self._publish(batch, outcomes)
        stored = [
            (item.dkey, v)
            for item, v in leaders
            if item.dkey and v is not None and item.claim is not None
        ]
        batch_outputs = _BATCH_OUTPUTS.get()
        if batch_outputs is None:
            await self._store(stored)
            self._remember(leaders, stored)
        else:
            # exactly_once: remembered once the transaction that carries the results
            # commits. Remembered before, an analysis would answer its own event when an
            # abort has it processed again: dropped as a repeat (dedup policy drop), its
            # only result lost.
            batch_outputs.on_commit.append(functools.partial(self._store_committed, stored))
            self._remember(leaders, [])
        if again:
            await self._analyse(again, outcomes)

    # ------------------------------------------------------------------ publishing

    def _rejection(self, item: _Item, error: ContentStreamError, stage: str) -> _Output:
        letter = build_dead_letter(item.record, error, stage=stage, max_peek_bytes=self._max_peek)
        record = item.record
        log_dead_letter(record, error, letter)
        self._metrics.dead_letters.labels(code=error.code.value).inc()
        headers = letter.headers()
        headers += self._forwarded(item)
        message = Outgoing(self._dlq_topic, record.key, record.value or b"", headers)
        return item, message, Outcome.DEAD_LETTERED

    def _forwarded(self, item: _Item) -> Headers:
        """The input headers that travel on with ``item``'s output; with a sampled
        trace, its event span's context in place of the incoming one."""
        forwarded = self._forwarding.forwarded(item.record.headers)
        if item.trace is not None:
            forwarded = with_trace(forwarded, item.trace.event_headers(item.index))
        return forwarded

    def _result_headers(self, item: _Item, versions: Mapping[str, str] | None = None) -> Headers:
        """Headers of ``item``'s result; ``versions`` are those its analysis names (the
        pool's current ones for a reused analysis, which its dedup key was made of)."""
        assert item.event is not None
        headers = self._own.for_result(item.event.id, versions or self._versions())
        headers += self._forwarded(item)
        return headers

    async def _publish(self, outputs: list[_Output], outcomes: Counter[Outcome]) -> None:
        """Send what may go now as one group; an output whose event id has an earlier
        event still unpublished waits for that one, on its own (no group waits on
        another, so same-id chains cannot deadlock)."""
        if not outputs:
            return
        now: list[_Output] = []
        later: list[_Output] = []
        for output in outputs:
            after = output[0].after
            (later if after is not None and not after.done() else now).append(output)
        await self._send(now, outcomes)
        if later:
            await asyncio.gather(*(self._send_after(o, outcomes) for o in later))

    async def _deliver(
        self, outputs: list[_Output], refused_since: float | None = None
    ) -> list[_Output]:
        """Publish the outputs' messages; returns the outputs as published.

        Kafka being away or busy is retried with backoff, never dropped: the offsets
        stay uncommitted meanwhile, so a crash reprocesses the events. A record Kafka
        refuses for what it is (too large for the topic) is retried too, for the grace
        period, in case an operator raises the limit; after that it would hold its
        partition back for good, so it is replaced: a result by the event's dead
        letter, a dead letter by one without the original bytes."""
        buffer = _BATCH_OUTPUTS.get()
        if buffer is not None:
            buffer.messages.extend(self._buffered(o) for o in outputs if o[1] is not None)
            return outputs
        # Outputs whose message Kafka has not acknowledged yet; only those are sent again.
        pending = [o for o in outputs if o[1] is not None]
        delay = self._backoff
        while pending:
            try:
                await self._publisher.publish([m for _, m, _ in pending if m is not None])
                break
            except asyncio.CancelledError:
                raise
            except Exception as raised:
                error, pending = _unacknowledged(raised, pending)
            if isinstance(error, RECORD_REFUSALS):
                now = time.monotonic()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since >= self._refusal_grace:
                    done = [o for o in outputs if not any(o is p for p in pending)]
                    if len(pending) > 1:
                        # Which one? A batch can also be refused for its total size.
                        for output in pending:
                            done += await self._deliver([output], refused_since)
                        return done
                    replaced = [self._instead_of_refused(o, error) for o in pending]
                    if replaced != pending:
                        return done + await self._deliver(replaced, refused_since)
            log.error(
                "could not publish %d record(s) (%s: %s); retrying in %.1fs",
                len(pending),
                type(error).__name__,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
        return outputs

    def _buffered(self, output: _Output) -> Buffered:
        assert output[1] is not None
        return Buffered(output[1], functools.partial(self._buffered_instead, output))

    def _buffered_instead(self, output: _Output, exc: BaseException) -> Buffered | None:
        replaced = self._instead_of_refused(output, exc)
        return None if replaced is output else self._buffered(replaced)

    def _instead_of_refused(self, output: _Output, exc: BaseException) -> _Output:
        item, message, _ = output
        if message is None:
            return output
        reason = _refusal_reason(message, exc)
        if message.topic != self._dlq_topic:
            return self._rejection(item, ResultRejected(reason, stage="publish"), "publish")
        if any(name == DROPPED_HEADER for name, _ in message.headers):
            return output  # nothing left to leave out
        record = item.record
        log.error(
            "dead letter of %s[%d]@%d refused (%s): publishing it without the original",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        headers = [*message.headers, (DROPPED_HEADER, reason.encode("utf-8"))]
        return item, Outgoing(message.topic, message.key, b"", headers), output[2]

    async def _send_after(self, output: _Output, outcomes: Counter[Outcome]) -> None:
        after = output[0].after
        if after is not None:
            await asyncio.shield(after)
        await self._send([output], outcomes)

    async def _send(self, outputs: list[_Output], outcomes: Counter[Outcome]) -> None:
        trace = outputs[0][0].trace if outputs else None
        if trace is not None:
            with trace.child(PUBLISH_SPAN, **{"messaging.batch.message_count": len(outputs)}):
                outputs = await self._deliver(outputs)
        else:
            outputs = await self._deliver(outputs)
        taken: list[float] = []
        produced_at: list[float] = []
        for item, message, outcome in outputs:
            outcomes[outcome] += 1
            if message is not None:
                taken.append(item.taken_at)
            if item.trace is not None:
                item.trace.event_done(
                    item.index, outcome.value, item.event.id if item.event else None
                )
            if message is not None and item.event is not None:
                produced = produced_at_s(item.event)
                if produced is not None:
                    produced_at.append(produced)
            if item.event is not None:
                self._end_turn(item, published=message is not None)
        batch_outputs = _BATCH_OUTPUTS.get()
        if batch_outputs is None:
            self._observe_latencies(taken, produced_at)
        else:  # exactly_once: an output is out once its transaction commits
            batch_outputs.on_commit.append(
                functools.partial(self._observe_committed, taken, produced_at)
            )

    def _observe_latencies(self, taken: list[float], produced_at: list[float]) -> None:
        """Latencies of outputs out now: since the processor took their records in
        (``time.monotonic()``), and since their events were produced (epoch seconds)."""
        now = time.time()
        out = time.monotonic()
        observe_values(self._metrics.end_to_end_latency, [max(0.0, now - p) for p in produced_at])
        observe_values(self._metrics.processing_latency, [out - t for t in taken])

    async def _observe_committed(self, taken: list[float], produced_at: list[float]) -> None:
        self._observe_latencies(taken, produced_at)


def _unacknowledged(raised: Exception, pending: list[_Output]) -> tuple[Exception, list[_Output]]:
    """Why a publish failed, and which of its outputs still wait for Kafka."""
    if not isinstance(raised, PartlyPublished):
        return raised, pending
    waiting = {id(m) for m in raised.pending}
    return raised.cause, [o for o in pending if id(o[1]) in waiting]


def _refusal_reason(message: Outgoing, exc: BaseException) -> str:
    return (
        f"Kafka refused a record of {len(message.value)} bytes for {message.topic}: "
        f"{type(exc).__name__}: {exc}"
    )


def _decode_chunks(items: list[_Item]) -> Iterator[list[_Item]]:
    """Runs of items decoded in one call: up to 64 events or ~64 KB of payload, so a
    run of long texts still gives the event loop back every few milliseconds."""
    chunk: list[_Item] = []
    size = 0
    for item in items:
        chunk.append(item)
        size += len(item.record.value or b"")
        if len(chunk) >= DECODE_CHUNK_EVENTS or size >= DECODE_CHUNK_BYTES:
            yield chunk
            chunk = []
            size = 0
    if chunk:
        yield chunk


def _spawn(coro: Any) -> asyncio.Task[None]:
    return asyncio.ensure_future(coro)
