"""The server's Prometheus metrics (``GET /metrics``), kept with ``prometheus-client``.

One process (``slotline serve``): every metric lives in this ``Metrics``' own registry (a test
may build several servers in one process); ``process_*`` come from the client's process
collector and ``slotline_tasks`` is counted at scrape time.

Several workers (``serve --workers N``): the supervisor gives them a fresh directory in
``PROMETHEUS_MULTIPROC_DIR`` (``agent.server.metrics_process``), the client then keeps every value
in a file per process there, and ``/metrics`` from any worker reads all the files: one whole view,
the same from every worker. Counters and histograms are summed over the workers, those that
died included (a total never drops when a worker is replaced). Gauges are live only (a dead
worker's files are removed by the supervisor): ``slotline_active_calls``, ``slotline_tasks``,
``slotline_workers``, ``process_resident_memory_bytes``, ``process_virtual_memory_bytes`` and
``process_open_fds`` are summed over the live workers (``livesum``: what the service holds),
``process_max_fds`` is the tightest limit (``livemin``), ``process_start_time_seconds`` the newest
worker's start (``livemax``: a restart shows); each worker samples its own every ``SAMPLE_S``.

Updated per call, per turn or per booking, never per 20 ms frame. Labelled counters list their
known label values at zero from start-up, so a rate is defined before the first event.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.samples import Sample

from slotline.agent.call.calllog import Latency
from slotline.agent.server.heap import GENERATIONS, GcPauses
from slotline.agent.server.metrics_process import ProcessSampler, multiprocess_dir, whole_registry

# Seconds. Turn latency lives between ~0.3 s and a few seconds; barge-in well under 1 s.
_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
# A turn's stages run from ~10 ms (a cached prompt's first byte) to seconds (a slow calendar).
# A collection's pause: ~0.5 ms for the young generation, tens of ms for a full scan of a busy
# server (``agent.server.heap``); anything past 10 ms is heard as late audio.
_GC_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_STAGE_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

DIRECTIONS = ("inbound", "outbound")
CALL_STATUSES = ("completed", "failed")
# What the call log measures of a turn (``Latency``) and of a booking look-up (``booking_ms``).
STAGES = ("endpoint", "stt_final", "llm_ttft", "tts_ttfb", "server_overhead", "booking")
# Known label values (more may appear: a provider's name is its module's ``PROVIDER``).
PROVIDERS = ("stt-deepgram", "stt-local", "stt", "openai", "llm", "tts.elevenlabs", "tts.local",
             "tts", "twilio", "database", "opt-out", "local", "calcom", "caldav", "ghl",
             "google", "outlook", "webhook", "webhook-action")
PROTOCOL_CODES = (  # providers.telephony.twilio_media's codes, the socket's and the gate's own
    "invalid_json", "not_an_object", "unknown_event", "missing_field", "bad_field_type",
    "bad_base64", "bad_payload_size", "binary_frame", "unsupported_media_format",
    "bad_dtmf_digit", "before_start", "duplicate_start", "after_stop", "stream_mismatch",
    "out_of_order", "timestamp_backwards", "timestamp_ahead", "media_too_fast",
    "message_too_big", "socket_error", "too_many_errors", "dtmf_overflow", "stream_refused",
)
BOOKING_RESULTS = ("booked", "slot_taken", "rescheduled", "cancelled", "undone", "undo_failed",
                   "undo_retried")
TURN_END_REASONS = ("silence", "stt_final", "complete_answer", "model_end", "max_turn")


def _labelled_histogram(name: str, help_text: str, label: str, known: Iterable[str],
                        buckets: tuple[float, ...], registry: CollectorRegistry) -> Histogram:
    """A histogram with one label, its known values present (empty) from the start."""
    histogram = Histogram(name, help_text, [label], buckets=buckets, registry=registry)
    for value in known:
        histogram.labels(value)
    return histogram


class LabelledCounter:
    """A counter with one label, its known values present at zero from the start."""

    def __init__(self, name: str, help_text: str, label: str, known: Iterable[str],
                 registry: CollectorRegistry) -> None:
        self._counter = Counter(name, help_text, [label], registry=registry)
        self._label = label
        for value in known:
            self._counter.labels(value)

    def inc(self, label_value: str, by: float = 1) -> None:
        if by:
            self._counter.labels(label_value).inc(by)

    @property
    def values(self) -> collections.Counter[str]:
        """This process's non-zero counts by label value (a missing value counts 0)."""
        return collections.Counter({
            sample.labels[self._label]: int(sample.value) for sample in _samples(self._counter)
            if sample.name.endswith("_total") and sample.value})


class Count:
    """A counter without labels."""

    def __init__(self, name: str, help_text: str, registry: CollectorRegistry) -> None:
        self._counter = Counter(name, help_text, registry=registry)

    def inc(self) -> None:
        self._counter.inc()

    @property
    def value(self) -> int:
        """This process's count."""
        return int(next(s.value for s in _samples(self._counter) if s.name.endswith("_total")))


class Timing:
    """A histogram of seconds without labels."""

    def __init__(self, name: str, help_text: str, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(name, help_text, buckets=_BUCKETS_S, registry=registry)

    def observe(self, seconds: float) -> None:
        self._histogram.observe(seconds)

    @property
    def count(self) -> int:
        """This process's observations."""
        return int(next(s.value for s in _samples(self._histogram) if s.name.endswith("_count")))

    @property
    def total(self) -> float:
        """The sum of this process's observations, in seconds."""
        return float(next(s.value for s in _samples(self._histogram) if s.name.endswith("_sum")))


def _samples(metric: Counter | Histogram) -> Iterator[Sample]:
    for family in metric.collect():
        yield from family.samples


class Metrics:
    def __init__(self) -> None:
        # no ``*_created`` series: they differ from one process (and one server) to the next
        cast(Callable[[], None], disable_created_metrics)()
        self._dir = multiprocess_dir()
        self.registry = registry = CollectorRegistry()
        self._live_calls = 0
        self._active = Gauge("slotline_active_calls", "Calls with an open media stream.",
                             registry=registry, multiprocess_mode="livesum")
        self._calls_started = Counter(
            "slotline_calls_started_total", "Calls whose media stream started, by direction.",
            ["direction"], registry=registry)
        self._calls_ended = Counter(
            "slotline_calls_ended_total", "Calls that ended, by direction and final status.",
            ["direction", "status"], registry=registry)
        for direction in DIRECTIONS:
            self._calls_started.labels(direction)
            for status in CALL_STATUSES:
                self._calls_ended.labels(direction, status)
        self.turn_latency = Timing(
            "slotline_turn_latency_seconds", "Caller's last voiced frame to first agent audio.",
            registry)
        self._stages = _labelled_histogram(
            "slotline_stage_seconds",
            "Parts of a turn's latency as the call log records them (endpoint, stt_final, "
            "llm_ttft, tts_ttfb, server_overhead) and booking look-ups (booking).",
            "stage", STAGES, _STAGE_BUCKETS_S, registry)
        self.bargein = Timing(
            "slotline_bargein_seconds", "First voiced frame of an interruption to clear sent.",
            registry)
        self.provider_errors = LabelledCounter(
            "slotline_provider_errors_total", "Provider calls that failed.", "provider",
            PROVIDERS, registry)
        self.protocol_errors = LabelledCounter(
            "slotline_protocol_errors_total", "Malformed or out-of-order wire messages.", "code",
            PROTOCOL_CODES, registry)
        self.bookings = LabelledCounter(
            "slotline_bookings_total", "Booking attempts by result.", "result",
            BOOKING_RESULTS, registry)
        self.turn_ends = LabelledCounter(
            "slotline_turn_ends_total",
            "Caller turns by what ended them: silence, stt_final, complete_answer, model_end or "
            "max_turn.", "reason",
            TURN_END_REASONS, registry)
        self.cached_audio_turns = Count(
            "slotline_cached_audio_turns_total",
            "Agent turns that played prompt audio from the cache.", registry)
        self.tts_ahead = LabelledCounter(
            "slotline_tts_ahead_total",
            "Sentences synthesized before they were said (a booking's confirmation while the "
            "caller answers its read-back): made, and used (said).", "outcome",
            ("made", "used"), registry)
        self.fillers = Count(
            "slotline_fillers_total", "Fillers said while a reply was slow to start.", registry)
        self.false_interruptions = Count(
            "slotline_false_interruptions_total",
            "Barge-ins with no words (noise) after which the agent resumed.", registry)
        self.flow_turns = LabelledCounter(
            "slotline_flow_turns_total",
            "Caller turns a flow handled: llm=skipped (the rules answered) or llm=used.", "llm",
            ("skipped", "used"), registry)
        self._gc_pauses = _labelled_histogram(
            "slotline_gc_pause_seconds",
            "How long each garbage collection stopped the process (its event loop and every "
            "call on it), by generation (2: a full scan).",
            "generation", GENERATIONS, _GC_BUCKETS_S, registry)
        self._gc = GcPauses()
        tasks = Gauge("slotline_tasks", "asyncio tasks alive in this process (summed over "
                      "live workers).", registry=registry, multiprocess_mode="livesum")
        workers = Gauge("slotline_workers", "Server processes alive.", registry=registry,
                        multiprocess_mode="livesum")
        workers.set(1)
        self._sampler: ProcessSampler | None = None
        if self._dir is None:
            ProcessCollector(registry=registry)
            tasks.set_function(_live_tasks)
            self._exposed = registry
        else:
            self._sampler = ProcessSampler(registry, tasks, _live_tasks, also=self.flush_gc)
            self._exposed = whole_registry(self._dir)

    # ---- calls, turns, bookings --------------------------------------------------------------

    @property
    def active_calls(self) -> int:
        """Calls with an open media stream in this process."""
        return self._live_calls

    def call_started(self, direction: str) -> None:
        self._live_calls += 1
        self._active.inc()
        self._calls_started.labels(direction).inc()

    def call_ended(self, direction: str, status: str) -> None:
        self._live_calls -= 1
        self._active.dec()
        self._calls_ended.labels(direction, status).inc()

    def observe_turn(self, latency: Latency) -> None:
        """A caller turn was answered: its latency and every stage the call log recorded."""
        self.turn_latency.observe(latency.turn_latency_ms / 1000)
        for stage, ms in (("endpoint", latency.endpoint_ms), ("stt_final", latency.stt_final_ms),
                          ("llm_ttft", latency.llm_ttft_ms), ("tts_ttfb", latency.tts_ttfb_ms),
                          ("server_overhead", latency.server_overhead_ms)):
            self._stages.labels(stage).observe(ms / 1000)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self._stages.labels(stage).observe(seconds)

    # ---- serving ----------------------------------------------------------------------------

    async def start(self) -> None:
        """With several workers, sample this process's gauges until ``aclose`` (a resource of
        the server: ``providers.base.AsyncResource``), and time this process's garbage
        collections (``slotline_gc_pause_seconds``)."""
        self._gc.install()
        if self._sampler is not None:
            self._sampler.start()

    async def aclose(self) -> None:
        self._gc.uninstall()
        if self._sampler is not None:
            await self._sampler.aclose()

    def flush_gc(self) -> None:
        """Move the collections' pauses timed since the last flush into the histogram."""
        for generation, seconds in self._gc.drain():
            self._gc_pauses.labels(str(generation)).observe(seconds)

    def render(self) -> str:
        """The text exposition: this process's metrics, or every worker's (module doc)."""
        if self._sampler is None:
            self.flush_gc()  # with workers, the sampler flushes each one's own
        return generate_latest(self._exposed).decode()

    async def exposition(self) -> str:
        """``render``, off the event loop when it reads the workers' files."""
        if self._dir is None:
            return self.render()
        return await asyncio.to_thread(self.render)


def _live_tasks() -> float:
    """asyncio tasks not yet done on this thread's running loop (NaN outside a loop)."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return float("nan")
