"""Which decode goes to a worker next: per-call queues, taken round robin, with caps.

Sans-I/O (no awaits, no processes): ``_sphinx_pool`` owns the processes and asks this queue
for work. Why it exists (issue 17, defects 3 and 4):

* Requests wait here, not in a worker's stdin pipe. A pipe is FIFO, holds every byte written
  to it until the worker reads it, and cannot take back a request whose caller went away
  (a stale speculation, a turn that timed out). Queued here, a cancelled request is dropped
  before it costs any decode time, and the parent's memory is bounded by the caps below.
* Round robin by call, not FIFO by request: a call that queues a lot waits for its own work
  and nobody else's; every other call gets the next turn.
* A request is decoded in pieces of at most ``max_piece_bytes``, cut at the quietest 20 ms
  inside the last second before the limit, so no one request holds a worker for longer
  than one piece while other calls wait. ``LocalSpeechToText`` uses 5 s pieces: ~0.25 s of
  decode, which the speculative decode's head start (350 ms before the turn detector asks)
  mostly hides; 4-recording utterances (5-9 s) cut that way scored 5.6 % WER against 7.5 %
  decoded whole (107 words; /tmp bench, not committed), so cutting at a pause costs nothing
  measurable.
* Every request carries a deadline; one that is still queued when it passes fails alone.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.stt import _sphinx_wire as wire

PROVIDER = "stt-local"
BYTES_PER_MS = 16  # 8 kHz x 16-bit mono
_CUT_FRAME_BYTES = 20 * BYTES_PER_MS
_CUT_SEARCH_BYTES = 1000 * BYTES_PER_MS  # look this far back from the limit for a pause


@dataclass(slots=True, eq=False)
class Job:
    """One request and how far its decode has come. Mutable on purpose: its pieces are
    decoded one at a time and their words gathered here until the last one is back."""

    call_key: str
    pcm16: bytes
    phrases: tuple[str, ...]
    grammar: str | None
    future: asyncio.Future[wire.DecodeResult]
    deadline_s: float  # event-loop time after which it fails instead of being decoded
    offset_bytes: int = 0
    pieces_done: int = 0
    texts: list[str] = field(default_factory=list)
    weighted_confidence: float = 0.0
    confidence_bytes: int = 0
    decode_ms: float = 0.0
    source: Literal["grammar", "lm", "none"] = "none"
    consent: bool = False  # ``SpeechHints.consent``

    @property
    def finished(self) -> bool:
        return self.pieces_done > 0 and self.offset_bytes >= len(self.pcm16)

    def next_piece_end(self, max_piece_bytes: int) -> int:
        """Where the next piece ends: everything left if it fits, else at a pause."""
        return piece_end(self.pcm16, self.offset_bytes, max_piece_bytes)

    def add_piece(self, result: wire.DecodeResult, end_bytes: int) -> None:
        piece_bytes = end_bytes - self.offset_bytes
        self.offset_bytes = end_bytes
        self.pieces_done += 1
        self.decode_ms += result.decode_ms
        if result.text:
            self.texts.append(result.text)
            self.source = result.source if self.source == "none" else "lm"
        if result.confidence is not None:
            self.weighted_confidence += result.confidence * piece_bytes
            self.confidence_bytes += piece_bytes

    def result(self, request_id: int) -> wire.DecodeResult:
        confidence = (
            self.weighted_confidence / self.confidence_bytes if self.confidence_bytes else None
        )
        return wire.DecodeResult(
            request_id, " ".join(self.texts), confidence, self.source, self.decode_ms
        )


def piece_end(pcm16: bytes, start_bytes: int, max_piece_bytes: int) -> int:
    """The end of the piece that starts at ``start_bytes``: the end of the audio if the rest
    fits in ``max_piece_bytes``, else the start of the quietest 20 ms frame in the last
    second before the limit (a cut inside a word would cost that word)."""
    limit = start_bytes + max_piece_bytes
    if limit >= len(pcm16):
        return len(pcm16)
    search_from = max(start_bytes + _CUT_FRAME_BYTES, limit - _CUT_SEARCH_BYTES)
    search_from -= (search_from - start_bytes) % 2  # whole samples
    frames = (limit - search_from) // _CUT_FRAME_BYTES
    if frames < 1:
        return max(start_bytes + 2, limit - (limit - start_bytes) % 2)
    window = np.frombuffer(
        pcm16, dtype="<i2", count=frames * _CUT_FRAME_BYTES // 2, offset=search_from
    ).astype(np.float32)
    energy = np.square(window).reshape(frames, _CUT_FRAME_BYTES // 2).sum(axis=1)
    return search_from + int(np.argmin(energy)) * _CUT_FRAME_BYTES


class FairQueue:
    """Per-call FIFO queues served round robin; a call with a piece in flight waits its turn.

    Caps, checked when a request is queued: ``max_call_bytes`` of audio per call (a request
    over it fails alone, at once) and ``max_total_bytes`` over all calls (new requests fail
    as retryable while the decoders are this far behind)."""

    def __init__(self, *, max_call_bytes: int, max_total_bytes: int) -> None:
        self._max_call_bytes = max_call_bytes
        self._max_total_bytes = max_total_bytes
        self._jobs: dict[str, deque[Job]] = {}
        self._turns: OrderedDict[str, None] = OrderedDict()  # calls that may go next, in order
        self._in_flight: set[str] = set()
        self._call_bytes: dict[str, int] = {}
        self.total_bytes = 0

    @property
    def has_work(self) -> bool:
        return bool(self._turns)

    def push(self, job: Job) -> ProviderError | None:
        """Queue ``job``, or say why not (the caller fails its future with it)."""
        key = job.call_key
        self._purge(key)
        size = len(job.pcm16)
        queued = self._call_bytes.get(key, 0)
        if queued + size > self._max_call_bytes:
            return ProviderError(
                PROVIDER,
                f"call {key} would have {(queued + size) // BYTES_PER_MS} ms of audio "
                f"queued, over its cap of {self._max_call_bytes // BYTES_PER_MS} ms",
                retryable=False,
            )
        if self.total_bytes + size > self._max_total_bytes:
            return ProviderError(
                PROVIDER, "decoders overloaded: too much audio queued", retryable=True
            )
        self._jobs.setdefault(key, deque()).append(job)
        self._call_bytes[key] = queued + size
        self.total_bytes += size
        if key not in self._in_flight:
            self._turns.setdefault(key, None)
        return None

    def pop(self, now_s: float) -> Job | None:
        """The next job to send a piece of, round robin by call; expired jobs fail here."""
        while self._turns:
            key, _ = self._turns.popitem(last=False)
            jobs = self._jobs[key]
            while jobs:
                job = jobs.popleft()
                if job.future.done():
                    self._release(job)
                    continue
                if now_s >= job.deadline_s:
                    fail(
                        job.future,
                        ProviderTimeout(PROVIDER, f"call {key}: not decoded before its deadline"),
                    )
                    self._release(job)
                    continue
                self._in_flight.add(key)
                return job
            self._forget_if_idle(key)
        return None

    def finish(self, job: Job) -> None:
        """``job``'s piece is back (or failed): queue the rest of it, give the call a turn."""
        key = job.call_key
        self._in_flight.discard(key)
        if job.future.done() or job.finished:
            self._release(job)
        else:
            self._jobs.setdefault(key, deque()).appendleft(job)
        if self._jobs.get(key):
            self._turns[key] = None  # at the back: everyone else goes first
        else:
            self._forget_if_idle(key)

    def fail_all(self, error: ProviderError) -> None:
        """Fail every queued job (the pieces in flight belong to their workers)."""
        for jobs in list(self._jobs.values()):
            while jobs:
                job = jobs.popleft()
                if not job.future.done():
                    fail(job.future, error)
                self._release(job)
        self._turns.clear()
        for key in list(self._jobs):
            self._forget_if_idle(key)

    def _purge(self, key: str) -> None:
        """Drop the call's cancelled jobs now, so their audio is not held until its turn."""
        jobs = self._jobs.get(key)
        if not jobs:
            return
        for job in [job for job in jobs if job.future.done()]:
            jobs.remove(job)
            self._release(job)
        if not jobs:
            self._turns.pop(key, None)
            self._forget_if_idle(key)

    def _release(self, job: Job) -> None:
        size = len(job.pcm16)
        self.total_bytes -= size
        self._call_bytes[job.call_key] = self._call_bytes.get(job.call_key, 0) - size

    def _forget_if_idle(self, key: str) -> None:
        if not self._jobs.get(key) and key not in self._in_flight:
            self._jobs.pop(key, None)
            if self._call_bytes.get(key, 0) <= 0:
                self._call_bytes.pop(key, None)


def fail(future: asyncio.Future[wire.DecodeResult], error: ProviderError) -> None:
    """Fail ``future``; whoever awaits it gets ``error``, and a speculation nobody awaits any
    more does not log "exception was never retrieved" when it is collected."""
    future.set_exception(error)
    future.exception()
