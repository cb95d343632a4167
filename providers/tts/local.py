"""Offline text-to-speech with espeak-ng (the library and voices ship in ``espeakng-loader``).

espeak-ng keeps global state, so one daemon thread per process owns the library and
synthesizes one job at a time from a queue. A job is one ``synthesize`` call: its text is cut
into segments of at most ``_MAX_SEGMENT_CHARS``, and the worker puts an unfinished job back at
the end of the queue after each segment, so a long text never holds up another call's reply
for more than one segment.

Audio travels worker -> event loop only: every espeak buffer (22 050 Hz int16) goes through
the job's own streaming resampler to 8 kHz and the mu-law encoder on the worker thread, and
the bytes reach the requesting coroutine through ``loop.call_soon_threadsafe`` into its
``asyncio.Queue``. The worker never waits for the consumer (the queue is unbounded; a paced
consumer reads at real time while espeak runs hundreds of times faster).

When the consumer stops iterating (barge-in cancels the reply task, or it breaks out of the
``async for``) the job is marked cancelled; the synth callback sees that on the next buffer
and aborts espeak, and the worker moves on to the next job.

    SynthWorker thread                      event loop
    queue.get() -> job ──segment──> espeak_Synth ─buffer─> resample, encode
                                     │ call_soon_threadsafe(put_nowait, bytes)
                                     └──────────────────────────────> asyncio.Queue -> async for
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import espeakng_loader
import numpy as np
import numpy.typing as npt

from slotline.audio.mulaw import encode_array
from slotline.audio.resample import Resampler
from slotline.providers import tracing
from slotline.providers.errors import ProviderError, ProviderTimeout
from slotline.providers.tts._espeak import (
    EE_NOT_FOUND,
    PITCH_MAX,
    PITCH_MIN,
    RATE_MAX_WPM,
    RATE_MIN_WPM,
    EspeakError,
    EspeakLibrary,
)

log = logging.getLogger(__name__)

PROVIDER = "tts.local"
OUTPUT_RATE_HZ = 8000
DEFAULT_VOICE = "en-us"
DEFAULT_RATE_WPM = 175  # espeakRATE_NORMAL
DEFAULT_PITCH = 50  # espeak's "normal" base pitch on its 0-100 scale

# espeak's buffer length; the bundled build hands back ~60 ms buffers whatever is asked, and
# at several hundred times real time a buffer costs well under a millisecond to make.
_ESPEAK_BUFFER_MS = 60
# Audio after the first buffer is sent on in pieces of at least this much (mu-law bytes at
# 8 kHz = 250 ms) so a sentence costs the loop a handful of wake-ups, not one per buffer.
# At espeak's speed the extra wait for a piece is a fraction of a millisecond.
_COALESCE_BYTES = 2000
# About 12 s of speech, ~30 ms of work with resampling: how long another call's reply may wait
# behind each long text the worker is already speaking.
_MAX_SEGMENT_CHARS = 200
# Loading the library and voice data takes tens of ms; a wait this long means it is wedged.
_PROBE_TIMEOUT_S = 10.0

_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]]*\s")
_CLAUSE_BREAK = re.compile(r"[,;:]\s")


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    voice: str
    rate_wpm: int
    pitch: int


@dataclass(frozen=True, slots=True)
class TextSegment:
    """A piece of text espeak speaks in one call; ``end_pause`` adds a sentence pause."""

    text: str
    end_pause: bool


def split_text(
    text: str, *, end_pause: bool, max_chars: int = _MAX_SEGMENT_CHARS
) -> list[TextSegment]:
    """Cut text into segments of at most ``max_chars``, preferring sentence, then clause, then
    word boundaries. A segment cut at punctuation keeps a pause after it, as espeak would
    have made inside the whole text; the last one pauses only when ``end_pause`` is set."""
    rest = " ".join(text.replace("\0", " ").split())
    segments: list[TextSegment] = []
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut, pause = _last_break(_SENTENCE_BREAK, window), True
        if cut == 0:
            cut = _last_break(_CLAUSE_BREAK, window)
        if cut == 0:
            cut, pause = window.rfind(" "), False
        if cut <= 0:
            cut = max_chars
        segments.append(TextSegment(rest[:cut].rstrip(), pause))
        rest = rest[cut:].lstrip()
    if rest:
        segments.append(TextSegment(rest, end_pause))
    return segments


def _last_break(pattern: re.Pattern[str], window: str) -> int:
    """Index just after the punctuation of the last break in ``window`` (0 when none)."""
    end = 0
    for match in pattern.finditer(window):
        end = match.end() - 1  # keep the whitespace out of the segment
    return end


_Item = bytes | ProviderError | None  # audio, failure, end of audio


class _Job:
    """One synthesize call as the worker sees it. Its fields are touched by the worker
    thread only, except ``cancelled`` (set from the loop) and ``_deliver`` (loop-bound)."""

    def __init__(
        self,
        settings: VoiceSettings,
        segments: list[TextSegment],
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[_Item], None],
    ) -> None:
        self.settings = settings
        self.segments = deque(segments)
        self.cancelled = threading.Event()
        self.resampler: Resampler | None = None  # made by the worker for the job's first segment
        self._loop = loop
        self._deliver = deliver
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._sent_any = False

    def take_audio(self, samples: npt.NDArray[np.int16]) -> bool:
        """Resample, encode and pass on one espeak buffer; True means abort synthesis."""
        if self.cancelled.is_set() or self.resampler is None:
            return True
        self._queue(self.resampler.process(samples))
        if not self._sent_any or self._pending_bytes >= _COALESCE_BYTES:
            self._flush()
        return self.cancelled.is_set()

    def segment_done(self) -> None:
        self._flush()

    def finish(self) -> None:
        if self.resampler is not None:
            self._queue(self.resampler.flush())
        self._flush()
        self._post(None)

    def fail(self, error: ProviderError) -> None:
        self._post(error)

    def _queue(self, samples: npt.NDArray[np.int16]) -> None:
        if samples.size:
            self._pending.append(encode_array(samples))
            self._pending_bytes += samples.size

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._sent_any = True
            self._post(data)

    def _post(self, item: _Item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # the requesting loop is closed: nobody is listening
            self.cancelled.set()


@dataclass(frozen=True, slots=True)
class _Probe:
    """Apply settings and report whether espeak accepted them (voice validation)."""

    settings: VoiceSettings
    result: concurrent.futures.Future[None]


class _SynthWorker:
    """The daemon thread that owns the espeak-ng library."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[_Job | _Probe] = queue.SimpleQueue()
        self._library: EspeakLibrary | None = None
        self._startup_error: ProviderError | None = None
        self._applied: VoiceSettings | None = None
        self._current: _Job | None = None
        self.thread = threading.Thread(target=self._run, name="slotline-espeak", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        if not self.thread.is_alive():
            raise ProviderError(PROVIDER, "the espeak-ng worker thread has stopped")
        self._inbox.put(job)

    def check(self, settings: VoiceSettings) -> None:
        """Block until the worker has tried ``settings``; raise ProviderError if refused."""
        probe = _Probe(settings, concurrent.futures.Future())
        self._inbox.put(probe)
        try:
            probe.result.result(timeout=_PROBE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise ProviderTimeout(PROVIDER, "espeak-ng worker did not answer") from None

    def _run(self) -> None:
        try:
            self._library = EspeakLibrary(
                espeakng_loader.get_library_path(),
                espeakng_loader.get_data_path(),
                buffer_ms=_ESPEAK_BUFFER_MS,
            )
        except (OSError, RuntimeError, EspeakError) as exc:
            log.error("espeak-ng failed to start: %s", exc)
            self._startup_error = ProviderError(PROVIDER, f"espeak-ng failed to start: {exc}")
        while True:
            item = self._inbox.get()
            if isinstance(item, _Probe):
                self._answer(item)
            else:
                self._step(item)

    def _answer(self, probe: _Probe) -> None:
        try:
            self._apply(probe.settings)
        except ProviderError as exc:
            probe.result.set_exception(exc)
        except Exception as exc:  # a bug must fail this one check, not stop the only worker
            log.exception("espeak-ng settings check failed")
            probe.result.set_exception(ProviderError(PROVIDER, f"internal error: {exc!r}"))
        else:
            probe.result.set_result(None)

    def _step(self, job: _Job) -> None:
        more = False
        try:
            more = not job.cancelled.is_set() and self._speak_next_segment(job)
        except ProviderError as exc:
            job.fail(exc)
        except EspeakError as exc:
            job.fail(ProviderError(PROVIDER, str(exc)))
        except Exception as exc:  # a bug must fail this one job, not stop the only worker
            log.exception("espeak-ng job failed")
            job.fail(ProviderError(PROVIDER, f"internal error: {exc!r}"))
        if more:
            self._inbox.put(job)  # to the back of the line: other calls' replies go first

    def _speak_next_segment(self, job: _Job) -> bool:
        """Synthesize the job's next segment; True when the job has more to say."""
        library = self._apply(job.settings)
        if job.resampler is None:  # a new soxr stream costs ~0.07 ms (audio.resample)
            job.resampler = Resampler(library.sample_rate_hz, OUTPUT_RATE_HZ)
        segment = job.segments.popleft()
        self._current = job
        try:
            library.synth(segment.text, self._take_audio, end_pause=segment.end_pause)
        finally:
            self._current = None
        if job.cancelled.is_set():
            log.debug("synthesis cancelled by its consumer")
            return False
        if job.segments:
            job.segment_done()
            return True
        job.finish()
        return False

    def _take_audio(self, samples: npt.NDArray[np.int16]) -> bool:
        job = self._current
        return True if job is None else job.take_audio(samples)

    def _apply(self, settings: VoiceSettings) -> EspeakLibrary:
        if self._library is None:
            raise self._startup_error or ProviderError(PROVIDER, "espeak-ng is not loaded")
        library = self._library
        if settings == self._applied:
            return library
        self._applied = None
        try:
            library.set_voice(settings.voice)
            library.set_rate(settings.rate_wpm)
            library.set_pitch(settings.pitch)
        except EspeakError as exc:
            if exc.function == "espeak_SetVoiceByName" and exc.code == EE_NOT_FOUND:
                raise ProviderError(PROVIDER, _unknown_voice(settings.voice, library)) from None
            raise ProviderError(PROVIDER, str(exc)) from exc
        self._applied = settings
        return library


def _unknown_voice(voice: str, library: EspeakLibrary) -> str:
    names = [identifier.rsplit("/", 1)[-1] for identifier in library.voice_identifiers()]
    language = voice.split("-")[0].split("+")[0].lower()
    close = [name for name in names if name.lower().startswith(language)]
    english = [name for name in names if name.lower().startswith("en")]
    examples = ", ".join((close or english or names)[:10])
    return (
        f"unknown voice {voice!r}: espeak-ng has no voice by that name or language "
        f"(installed: {examples}; a variant may follow, as in 'en-us+f3')"
    )


_worker: _SynthWorker | None = None
_worker_lock = threading.Lock()


def _shared_worker() -> _SynthWorker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _SynthWorker()
        return _worker


class LocalTts:
    """``TextToSpeech`` with espeak-ng: 8 kHz G.711 mu-law chunks as they are produced.

    The constructor checks the voice with the library (starting the shared worker thread
    the first time, tens of milliseconds) and raises ProviderError when it is unknown.
    ``end_pause`` adds espeak's sentence pause after each text, which keeps sentences apart
    when a reply is synthesized one sentence at a time.
    """

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        *,
        rate_wpm: int = DEFAULT_RATE_WPM,
        pitch: int = DEFAULT_PITCH,
        end_pause: bool = True,
    ) -> None:
        if not RATE_MIN_WPM <= rate_wpm <= RATE_MAX_WPM:
            raise ProviderError(
                PROVIDER, f"rate_wpm must be {RATE_MIN_WPM}-{RATE_MAX_WPM}, got {rate_wpm}"
            )
        if not PITCH_MIN <= pitch <= PITCH_MAX:
            raise ProviderError(PROVIDER, f"pitch must be {PITCH_MIN}-{PITCH_MAX}, got {pitch}")
        self.settings = VoiceSettings(voice=voice, rate_wpm=rate_wpm, pitch=pitch)
        self._end_pause = end_pause
        self._worker = _shared_worker()
        self._worker.check(self.settings)

    def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        return tracing.traced_stream("local", "tts synthesize", self._synthesize(text),
                                     {"slotline.chars": len(text)})

    async def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        segments = split_text(text, end_pause=self._end_pause)
        if not segments:
            return
        inbox: asyncio.Queue[_Item] = asyncio.Queue()
        job = _Job(self.settings, segments, asyncio.get_running_loop(), inbox.put_nowait)
        self._worker.submit(job)
        try:
            while (item := await inbox.get()) is not None:
                if isinstance(item, ProviderError):
                    raise item
                yield item
        finally:
            job.cancelled.set()
