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
  ``speculate_after_ms``; the turn detector waits longer than that (600 ms by default)
  before it calls ``finalize``, which then finds the result ready (0.1 ms). Speech resuming
  cancels the speculation.

Audio is gated by ``AudioChunk.voiced``: nothing is kept before the first voiced frame but a
``preroll_ms`` ring, silences inside a turn are kept up to ``max_gap_ms`` (then the ring
again), so a turn that never had speech finalizes to empty text without a decode.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from providers.base import AudioChunk, ResourceContext, SpeechHints, Transcript
from providers.errors import ProviderError, ProviderTimeout
from providers.stt import _sphinx_wire as wire

logger = logging.getLogger(__name__)

PROVIDER = "stt-local"
FRAME_MS = 20
_BYTES_PER_MS = 16  # 8 kHz x 16-bit
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # holds providers/ and audio/
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from providers.stt._sphinx_worker import main; main(sys.argv[2:])"
)


class LocalSpeechToText(ResourceContext):
    """A pool of pocketsphinx worker processes shared by every call of this server process.

    Use as an async context manager (or ``await start()`` / ``await aclose()``): start-up
    loads the models in the workers (~0.2 s) so the first turn does not wait for it.
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
        argv = [sys.executable, "-c", _BOOTSTRAP, str(_PACKAGE_ROOT), f"--lm-boost={lm_boost}"]
        self._workers = [_Worker(index, argv, startup_timeout_s) for index in range(workers)]
        self._request_ids = itertools.count(1)
        self.decodes_requested = 0  # speculative ones included; for tests and the bench
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Start (or restart) every worker that is not running."""
        async with self._start_lock:
            await asyncio.gather(*(w.spawn() for w in self._workers if not w.alive))

    async def aclose(self) -> None:
        await asyncio.gather(*(worker.stop() for worker in self._workers))

    def open_stream(self, *, call_sid: str) -> LocalSttStream:
        return LocalSttStream(self, call_sid)

    def submit(self, pcm16: bytes, hints: SpeechHints) -> asyncio.Future[wire.DecodeResult] | None:
        """Queue a decode on the least busy live worker; ``None`` if none is running.
        Synchronous and cheap: it writes one frame to a pipe."""
        live = [worker for worker in self._workers if worker.alive]
        if not live:
            return None
        worker = min(live, key=lambda candidate: candidate.in_flight)
        self.decodes_requested += 1
        request = wire.DecodeRequest(next(self._request_ids), pcm16, hints.phrases, hints.grammar)
        return worker.submit(request)

    def prepare(self, hints: SpeechHints) -> None:
        """Warm the workers' cache for ``hints`` (an empty decode); the result is not needed."""
        future = self.submit(b"", hints)
        if future is not None:
            future.add_done_callback(_ignore_result)

    async def decode(self, pcm16: bytes, hints: SpeechHints) -> wire.DecodeResult:
        future = self.submit(pcm16, hints)
        if future is None:
            await self.start()
            future = self.submit(pcm16, hints)
            if future is None:
                raise ProviderError(PROVIDER, "no decoder process is running", retryable=True)
        return await self.result(future)

    async def result(self, future: asyncio.Future[wire.DecodeResult]) -> wire.DecodeResult:
        try:
            async with asyncio.timeout(self._request_timeout_s):
                return await future
        except TimeoutError:
            # A worker that sat on a request this long is stuck (a pathological grammar can
            # take minutes): kill it so the calls queued behind it get a fresh one.
            for worker in self._workers:
                if worker.oldest_request_age_s() >= self._request_timeout_s:
                    await worker.stop(kill=True)
            raise ProviderTimeout(
                PROVIDER, f"no transcript within {self._request_timeout_s:g} s"
            ) from None


@dataclass(frozen=True, slots=True)
class _Speculation:
    future: asyncio.Future[wire.DecodeResult]
    hints: SpeechHints


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
        self._listeners: list[asyncio.Queue[Transcript | None]] = []
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
                future = owner.submit(bytes(utterance), self._hints)
                if future is not None:
                    self._speculation = _Speculation(future, self._hints)
        excess = len(utterance) - owner.max_utterance_bytes
        if excess > 0:  # keep the newest audio; trim in 1 s steps, not every frame
            del utterance[: excess + 1000 * _BYTES_PER_MS]

    def set_hints(self, hints: SpeechHints) -> None:
        if hints != self._hints and (hints.phrases or hints.grammar):
            # The question is being asked now: have the worker build (and cache) this hint
            # set's grammar and boosted LM while the agent speaks, not when the caller has
            # answered. An email grammar takes ~2.6 s to build on first use.
            self._owner.prepare(hints)
        self._hints = hints

    async def finalize(self) -> Transcript:
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
            result = await self._owner.decode(bytes(utterance), self._hints)
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
        for listener in self._listeners:
            listener.put_nowait(transcript)
        return transcript

    async def interim(self) -> AsyncIterator[Transcript]:
        """Finals only: this recogniser decodes whole utterances, so it has no partials."""
        if self._closed:
            return
        queue: asyncio.Queue[Transcript | None] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while (transcript := await queue.get()) is not None:
                yield transcript
        finally:
            self._listeners.remove(queue)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._speculation is not None:
            self._speculation.future.cancel()
            self._speculation = None
        self._utterance = None
        for listener in self._listeners:
            listener.put_nowait(None)


class _Worker:
    """One decoder process: requests out on its stdin, replies read back by one task."""

    def __init__(self, index: int, argv: list[str], startup_timeout_s: float) -> None:
        self._name = f"stt-local-worker-{index}"
        self._argv = argv
        self._startup_timeout_s = startup_timeout_s
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[wire.DecodeResult]] = {}
        self._sent_at: dict[int, float] = {}  # request id -> loop time it was written

    @property
    def alive(self) -> bool:
        return self._reader is not None and not self._reader.done()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def oldest_request_age_s(self) -> float:
        if not self._sent_at:
            return 0.0
        return asyncio.get_running_loop().time() - min(self._sent_at.values())

    async def spawn(self) -> None:
        await self.stop()  # reap a dead predecessor, if any
        process = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self._process = process
        try:
            async with asyncio.timeout(self._startup_timeout_s):
                ready = await _read_message(process)
        except (TimeoutError, asyncio.IncompleteReadError, wire.WireError) as exc:
            await self.stop()
            raise ProviderError(
                PROVIDER, f"{self._name} failed to start: {type(exc).__name__}", retryable=True
            ) from exc
        if not isinstance(ready, wire.WorkerReady):
            await self.stop()
            raise ProviderError(PROVIDER, f"{self._name} sent {type(ready).__name__} first")
        logger.info("%s ready pid=%d init_ms=%.0f", self._name, process.pid, ready.init_ms)
        self._reader = asyncio.create_task(self._read_replies(process), name=self._name)

    def submit(self, request: wire.DecodeRequest) -> asyncio.Future[wire.DecodeResult]:
        assert self._process is not None and self._process.stdin is not None
        future: asyncio.Future[wire.DecodeResult] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = future
        self._sent_at[request.request_id] = asyncio.get_running_loop().time()
        # No drain: the transport buffers what the pipe cannot take yet; the worker reads
        # every request promptly, so the buffer is bounded by the requests in flight.
        self._process.stdin.write(wire.encode(request))
        return future

    async def stop(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is not None:
            if kill and process.returncode is None:
                process.kill()
            if process.stdin is not None:
                process.stdin.close()  # EOF: the worker finishes its loop and exits
            try:
                async with asyncio.timeout(5.0):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader
        self._fail_pending("decoder process stopped")

    async def _read_replies(self, process: asyncio.subprocess.Process) -> None:
        try:
            while True:
                message = await _read_message(process)
                if isinstance(message, wire.DecodeResult | wire.DecodeFailed):
                    self._sent_at.pop(message.request_id, None)
                    future = self._pending.pop(message.request_id, None)
                    if future is None or future.done():
                        continue  # cancelled (a stale speculation, a timed-out turn)
                    if isinstance(message, wire.DecodeResult):
                        future.set_result(message)
                    else:
                        _fail(future, ProviderError(PROVIDER, message.message))
        except (asyncio.IncompleteReadError, wire.WireError) as exc:
            if self._process is process:  # not a stop() we asked for
                logger.error("%s exited: %s", self._name, type(exc).__name__)
        finally:
            self._fail_pending("decoder process exited")

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        self._sent_at.clear()
        for future in pending.values():
            if not future.done():
                _fail(future, ProviderError(PROVIDER, reason, retryable=True))


def _fail(future: asyncio.Future[wire.DecodeResult], error: ProviderError) -> None:
    """Fail ``future``; whoever awaits it gets ``error``, and a speculation nobody awaits any
    more does not log "exception was never retrieved" when it is collected."""
    future.set_exception(error)
    future.exception()


async def _read_message(process: asyncio.subprocess.Process) -> wire.Message:
    assert process.stdout is not None
    json_length, payload_length = wire.parse_header(
        await process.stdout.readexactly(wire.HEADER.size)
    )
    body = await process.stdout.readexactly(json_length)
    payload = await process.stdout.readexactly(payload_length) if payload_length else b""
    return wire.decode(body, payload)
