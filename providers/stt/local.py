"""Offline speech-to-text with pocketsphinx, decoded in separate processes.

Where the time goes (bench/stt_local_cost.py on the committed caller audio; 2 shared cores):

* pocketsphinx keeps the GIL while it decodes, so a decode in a thread stalls the event loop
  as long as a decode inline does (a 4.3 s utterance: 134 ms; in a worker process: 2 ms).
  Decoding streamed frame by frame would cost 0.23 ms (grammar) to 0.65 ms (domain LM) of
  loop time per 20 ms frame (p99 0.4 / 1.0 ms) plus up to 60 ms in one piece at the end of
  the turn. So the decoders live in worker processes (``_sphinx_worker``); on the loop
  ``push_audio`` only appends the frame to the turn's buffer (p50 0.4 µs, p99 9 µs; the
  one frame per pause that sends a speculative decode, below, ~0.1 ms) and ``finalize``
  awaits a reply.
* A worker decodes the whole utterance at once (more accurate than streaming, see the
  worker's docstring): ~40 ms of CPU per second of audio for the LM pass, a grammar pass
  adds ~10. Awaited at finalize that is ~120 ms p50 (~300 ms max) of ``stt_final_ms``. So
  the stream sends the utterance speculatively once the caller has been silent for
  ``speculate_after_ms``; its words are published as ``Heard(final=True)`` (they cover
  every voiced frame, and they are the words ``finalize`` returns unless the caller speaks
  again), so the turn detector can end a turn that already holds a whole answer ("next
  tuesday", "no thanks") instead of waiting its full silence, and ``finalize`` finds the
  result ready (0.1 ms). Speech resuming cancels the speculation and its words.

Requests do not go straight into a worker's pipe: they wait in per-call queues served round
robin, in pieces of at most 5 s, each with its own deadline (``_sphinx_queue``); one task per
worker process writes a piece, awaits ``drain()`` and reads the reply, and replaces the
process only when it has not answered for ``wedged_after_s`` (``_sphinx_pool``). So one
call's huge or slow request delays the others by one piece at most and fails alone, and a
stalled worker cannot make the parent buffer without bound (issue 17, defects 3 and 4).

Audio is gated by ``AudioChunk.voiced``: nothing is kept before the first voiced frame but a
``preroll_ms`` ring, silences inside a turn are kept up to ``max_gap_ms`` (then the ring
again), so a turn that never had speech finalizes to empty text without a decode.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from slotline.audio.framing import FRAME_MS
from slotline.providers import tracing
from slotline.providers.base import (
    AudioChunk,
    Heard,
    ResourceContext,
    SpeechHints,
    SttEvent,
    Transcript,
)
from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.stt import _sphinx_wire as wire
from slotline.providers.stt._fanout import Fanout
from slotline.providers.stt._sphinx_pool import Worker, WorkerState
from slotline.providers.stt._sphinx_queue import BYTES_PER_MS, PROVIDER, FairQueue, Job, fail

logger = logging.getLogger(__name__)

_BYTES_PER_MS = BYTES_PER_MS  # 8 kHz x 16-bit
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # holds providers/ and audio/
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from providers.stt._sphinx_worker import main; main(sys.argv[2:])"
)


class PoolState(enum.Enum):
    """The pool's lifecycle: requests are taken only while RUNNING."""

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class LocalSpeechToText(ResourceContext):
    """A pool of pocketsphinx worker processes shared by every call of this server process.

    Use as an async context manager (or ``await start()`` / ``await aclose()``): start-up
    loads the models in the workers (~0.2 s) so the first turn does not wait for it. Requests
    are queued per call and served round robin in pieces of at most ``max_piece_s`` (see
    ``_sphinx_queue``); each fails alone when ``request_timeout_s`` passes, and a worker is
    replaced only when it has given no answer for ``wedged_after_s`` (see ``_sphinx_pool``).
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        preroll_ms: int = 300,
        max_gap_ms: int = 500,
        speculate_after_ms: int | None = 250,
        max_utterance_s: float = 30.0,
        request_timeout_s: float = 15.0,
        startup_timeout_s: float = 30.0,
        lm_boost: int = 20,
        max_piece_s: float = 5.0,
        wedged_after_s: float = 15.0,
        max_queued_s_per_call: float = 600.0,
        max_queued_s: float = 1800.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.preroll_frames = max(1, preroll_ms // FRAME_MS)
        self.max_gap_frames = max(1, max_gap_ms // FRAME_MS)
        self.speculate_after_frames = (
            None if speculate_after_ms is None else max(1, speculate_after_ms // FRAME_MS)
        )
        self.max_utterance_bytes = int(max_utterance_s * 1000) * _BYTES_PER_MS
        self._request_timeout_s = request_timeout_s
        self._queue = FairQueue(
            max_call_bytes=int(max_queued_s_per_call * 1000) * _BYTES_PER_MS,
            max_total_bytes=int(max_queued_s * 1000) * _BYTES_PER_MS,
        )
        self._work = asyncio.Event()
        argv = [sys.executable, "-c", _BOOTSTRAP, str(_PACKAGE_ROOT), f"--lm-boost={lm_boost}"]
        request_ids = itertools.count(1)
        self._workers = [
            Worker(index, argv, startup_timeout_s=startup_timeout_s,
                   wedged_after_s=wedged_after_s,
                   max_piece_bytes=int(max_piece_s * 1000) * _BYTES_PER_MS,
                   request_ids=request_ids)
            for index in range(workers)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.state = PoolState.NEW
        self.decodes_requested = 0  # speculative ones included; for tests and the bench
        self._lifecycle_lock = asyncio.Lock()

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The decoder processes running now (for operators' tools and tests)."""
        return tuple(pid for worker in self._workers if (pid := worker.pid) is not None)

    async def start(self) -> None:
        """Start the workers (again, after ``aclose``); a no-op while running."""
        async with self._lifecycle_lock:
            if self.state is PoolState.RUNNING:
                return
            try:
                await asyncio.gather(*(worker.spawn() for worker in self._workers))
            except BaseException:
                await asyncio.gather(*(worker.reap(kill=True) for worker in self._workers))
                raise
            self._tasks = [
                asyncio.create_task(
                    worker.run(self._queue, self._work, self._spawn_failed), name=worker.name
                )
                for worker in self._workers
            ]
            self.state = PoolState.RUNNING

    async def aclose(self) -> None:
        """Fail every request not yet answered (retryable) and stop the workers."""
        async with self._lifecycle_lock:
            if self.state is not PoolState.RUNNING:
                return
            self.state = PoolState.CLOSING
            self._queue.fail_all(ProviderError(PROVIDER, "recogniser closed", retryable=True))
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.state = PoolState.CLOSED

    def open_stream(self, *, call_sid: str) -> LocalSttStream:
        return LocalSttStream(self, call_sid)

    def submit(self, pcm16: bytes, hints: SpeechHints) -> asyncio.Future[wire.DecodeResult] | None:
        """``submit_for`` a caller that has no call of its own (the Deepgram emulator, the
        bench): each such request is its own queue, so they are served in order and in
        parallel on several workers, as before there were per-call queues."""
        return self.submit_for("", pcm16, hints)

    def submit_for(
        self, call_key: str, pcm16: bytes, hints: SpeechHints
    ) -> asyncio.Future[wire.DecodeResult] | None:
        """Queue a decode in ``call_key``'s queue; ``None`` if the pool is not running.
        Synchronous and cheap (no I/O): the per-frame path calls it."""
        if self.state is not PoolState.RUNNING:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[wire.DecodeResult] = loop.create_future()
        self.decodes_requested += 1
        call_key = call_key or f"-{self.decodes_requested}"
        job = Job(call_key, pcm16, hints.phrases, hints.grammar, future,
                  loop.time() + self._request_timeout_s, consent=hints.consent)
        refused = self._queue.push(job)
        if refused is not None:
            logger.warning("decode refused call_sid=%s: %s", call_key, refused.message)
            fail(future, refused)
        else:
            self._work.set()
        return future

    def prepare(self, hints: SpeechHints, *, call_key: str = "") -> None:
        """Warm the workers' cache for ``hints`` (an empty decode); the result is not needed."""
        future = self.submit_for(call_key, b"", hints)
        if future is not None:
            future.add_done_callback(_ignore_result)

    async def decode(
        self, pcm16: bytes, hints: SpeechHints, *, call_key: str = ""
    ) -> wire.DecodeResult:
        if self.state is PoolState.NEW:
            await self.start()
        future = self.submit_for(call_key, pcm16, hints)
        if future is None:
            raise ProviderError(PROVIDER, f"recogniser is {self.state.value}", retryable=True)
        return await self.result(future)

    async def result(self, future: asyncio.Future[wire.DecodeResult]) -> wire.DecodeResult:
        """``future``'s result; waiting is bounded, and giving up cancels the request."""
        try:
            async with asyncio.timeout(self._request_timeout_s):
                return await future
        except TimeoutError:
            raise ProviderTimeout(
                PROVIDER, f"no transcript within {self._request_timeout_s:g} s"
            ) from None

    def _spawn_failed(self, error: ProviderError) -> None:
        """No request waits for a worker that cannot start while none is ready."""
        if not any(worker.state is WorkerState.READY for worker in self._workers):
            self._queue.fail_all(error)


@dataclass(slots=True)
class _Speculation:
    future: asyncio.Future[wire.DecodeResult]
    hints: SpeechHints
    answered: bool = False  # its done callback ran (its words, if any, were published)


# Hesitations the grammars and the domain LM allow around an answer. Left out of transcripts,
# as cloud recognisers do by default (Deepgram's filler_words=false).
_FILLERS = frozenset({"uh", "um", "er", "ah", "hmm"})


# ... but a backchannel made of them is the whole answer (the turn-taker needs to see it).
_BACKCHANNELS = frozenset({"uh huh", "mm hmm", "um hum", "uh uh"})


def strip_fillers(text: str) -> str:
    """``"uh next tuesday"`` → ``"next tuesday"``; ``"uh huh"`` stays."""
    if text in _BACKCHANNELS:
        return text
    return " ".join(word for word in text.split() if word not in _FILLERS)


def _ignore_result(future: asyncio.Future[wire.DecodeResult]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("hint warm-up failed: %s", future.exception())


class LocalSttStream:
    """One call's recognition stream (see the module docstring for the gating rules)."""

    def __init__(self, owner: LocalSpeechToText, call_sid: str) -> None:
        self._owner = owner
        self._call_sid = call_sid
        self._preroll: deque[bytes] = deque(maxlen=owner.preroll_frames)
        self._utterance: bytearray | None = None
        self._silent_frames = 0  # unvoiced frames since the last voiced one, inside a turn
        self._hints = SpeechHints()
        self._speculation: _Speculation | None = None
        self._finals: Fanout[Transcript] = Fanout()
        self._events: Fanout[SttEvent] = Fanout()
        self._closed = False

    def push_audio(self, chunk: AudioChunk) -> None:
        if self._closed:
            return
        owner = self._owner
        utterance = self._utterance
        if utterance is None:
            if not chunk.voiced:
                self._preroll.append(chunk.pcm16)
                return
            utterance = self._utterance = bytearray(b"".join(self._preroll))
            self._preroll.clear()
        if chunk.voiced:
            if self._silent_frames > owner.max_gap_frames:  # the gap was cut: restore its end
                utterance += b"".join(self._preroll)
                self._preroll.clear()
            self._silent_frames = 0
            if self._speculation is not None:
                self._speculation.future.cancel()  # the caller went on: that guess is stale
                self._speculation = None
            utterance += chunk.pcm16
        else:
            self._silent_frames += 1
            if self._silent_frames <= owner.max_gap_frames:
                utterance += chunk.pcm16
            else:
                self._preroll.append(chunk.pcm16)
            if self._silent_frames == owner.speculate_after_frames:
                future = owner.submit_for(self._call_sid, bytes(utterance), self._hints)
                if future is not None:
                    speculation = self._speculation = _Speculation(future, self._hints)
                    future.add_done_callback(lambda _: self._speculated(speculation))
        excess = len(utterance) - owner.max_utterance_bytes
        if excess > 0:  # keep the newest audio; trim in 1 s steps, not every frame
            del utterance[: excess + 1000 * _BYTES_PER_MS]

    def set_hints(self, hints: SpeechHints) -> None:
        if hints != self._hints and (hints.phrases or hints.grammar):
            # The question is being asked now: have the worker build (and cache) this hint
            # set's grammar and boosted LM while the agent speaks, not when the caller has
            # answered. An email grammar takes ~2.6 s to build on first use.
            self._owner.prepare(hints, call_key=self._call_sid)
        self._hints = hints

    async def finalize(self) -> Transcript:
        if self._utterance is None:  # nothing heard since the last turn: nothing to decode
            return await self._finalize()
        with tracing.request("local", "stt finalize") as span:
            transcript = await self._finalize()
            span.set_attribute("slotline.words", len(transcript.text.split()))
            return transcript

    async def _finalize(self) -> Transcript:
        utterance, speculation = self._utterance, self._speculation
        self._utterance, self._speculation = None, None
        self._silent_frames = 0
        self._preroll.clear()
        if utterance is None:
            return Transcript(text="", is_final=True)
        started = time.perf_counter()
        result: wire.DecodeResult | None = None
        speculated = speculation is not None and speculation.hints == self._hints
        if speculation is not None and speculated:
            try:
                result = await self._owner.result(speculation.future)
            except ProviderTimeout:
                raise
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                speculated = False  # its worker died; decode again (restarting it)
        elif speculation is not None:
            speculation.future.cancel()
        if result is None:
            result = await self._owner.decode(
                bytes(utterance), self._hints, call_key=self._call_sid
            )
        transcript = Transcript(
            text=strip_fillers(result.text), is_final=True, confidence=result.confidence
        )
        logger.info(
            "transcript call_sid=%s source=%s words=%d audio_ms=%d decode_ms=%.0f "
            "waited_ms=%.0f speculative=%s",
            self._call_sid, result.source, len(result.text.split()),
            len(utterance) // _BYTES_PER_MS, result.decode_ms,
            (time.perf_counter() - started) * 1000.0, speculated,
        )
        self._finals.publish(transcript)
        return transcript

    def _speculated(self, speculation: _Speculation) -> None:
        """A speculative decode is back: its words are the turn's so far, settled, unless the
        caller spoke again or the question changed meanwhile (then they are not published).
        No words are published too (``Heard("", final=True)``): "it's kate" decoded as nothing
        before a pause is a caller who has not answered yet, and the turn detector waits the
        longer silence of an unanswered question instead of ending the turn at the usual one."""
        future = speculation.future
        speculation.answered = True
        if (self._speculation is not speculation or speculation.hints != self._hints
                or future.cancelled() or future.exception() is not None):
            return
        self._events.publish(Heard(strip_fillers(future.result().text), final=True))

    def pause(self) -> None:
        """Nothing: this stream decodes speculatively on its own once the caller has been
        silent for ``speculate_after_ms``, and publishes those words (``events``). (A second
        decode at the turn detector's earlier pause was tried: a flite "yes please" at a
        read-back came back from the final decode as "actually" — decodes on one worker
        depend on what it decoded before — so there is one decode per pause, and the words
        published are the words ``finalize`` returns.)"""

    def words_pending(self) -> bool:
        """A speculative decode of the pause in flight."""
        speculation = self._speculation
        return speculation is not None and not speculation.answered

    async def events(self) -> AsyncIterator[SttEvent]:
        """``Heard(final=True)`` with each speculative decode's words, until the stream closes.
        There are no partials (whole utterances are decoded) and no endpointer
        (``SpeechEnded``): the turn detector's silence is the fallback."""
        async for event in self._events.subscribe():
            yield event

    async def interim(self) -> AsyncIterator[Transcript]:
        """Finals only: this recogniser decodes whole utterances, so it has no partials."""
        async for transcript in self._finals.subscribe():
            yield transcript

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._speculation is not None:
            self._speculation.future.cancel()
            self._speculation = None
        self._utterance = None
        self._finals.close()
        self._events.close()
