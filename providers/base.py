"""The small capability Protocols every vendor module implements.

A call session talks to speech-to-text, text-to-speech and the telephony side only through
these shapes, so a vendor is one module that satisfies one Protocol (no inheritance between
vendors). Audio crossing these seams is always 8 kHz mono: G.711 mu-law for the wire and
16-bit little-endian PCM for anything that needs samples.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol, Self, runtime_checkable


class AudioChunk(NamedTuple):
    """One inbound 20 ms frame of caller audio, in both representations.

    ``voiced`` is the session's VAD decision for this frame; a local recogniser uses it to
    skip silence, a cloud one may ignore it. A named tuple, not a frozen dataclass: one is
    made for every frame of every call, and a frozen dataclass's ``__init__`` (three
    ``object.__setattr__``) costs ~0.9 µs against ~0.3 µs (``bench/frame_path_cost.py``).
    """

    ulaw: bytes
    pcm16: bytes
    voiced: bool


@dataclass(frozen=True, slots=True)
class SpeechHints:
    """What the conversation expects the caller to say next.

    ``phrases`` are whole expected utterances (or fragments); ``grammar`` is an optional JSGF
    grammar. A recogniser that cannot use them ignores them; one that can should still fall back
    to a general model when the caller says something else.
    """

    phrases: tuple[str, ...] = ()
    grammar: str | None = None
    # A yes to this question commits the caller (the booking's "Shall I go ahead?"): a
    # recogniser that decodes in several passes gives nothing (so the question is asked again)
    # when one pass heard a refusal and its answer holds none. A no is never held back.
    consent: bool = False


@dataclass(frozen=True, slots=True)
class Transcript:
    """A recogniser result. ``is_final`` means this text will not change."""

    text: str
    is_final: bool
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Heard:
    """The words of the caller's current turn so far: everything recognised since the last
    ``finalize()``, joined across the recogniser's segments (so each ``Heard`` replaces the
    previous one; nothing is a delta).

    ``final`` is True when no word in ``text`` is a guess the recogniser may still revise and
    the text covers every voiced frame pushed so far: the recogniser has caught up with the
    caller at a pause (the answer to ``pause()``, or a vendor endpoint after the last voiced
    frame). False for interim hypotheses, and for settled words that speech has since followed.
    """

    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The recogniser's own endpointer says the caller's utterance ended (Deepgram:
    ``speech_final`` on a result with words, or ``UtteranceEnd``). Never caused by our own
    ``pause()``/``finalize()`` flushes; a recogniser without an endpointer never sends it."""


SttEvent = Heard | SpeechEnded


@runtime_checkable
class SttStream(Protocol):
    """One recognition stream for the length of a call.

    A turn is the audio pushed between two ``finalize()`` calls. Inside a turn the caller may
    pause (``pause()``: the recogniser finishes what it has heard so far, early) and go on;
    ``events()`` reports the words so far and the vendor's end-of-speech decisions, in a
    vendor-neutral form, so nothing above this seam parses a vendor's messages.
    """

    def push_audio(self, chunk: AudioChunk) -> None:
        """Queue one frame. Must not block: called on the event loop every 20 ms.
        ``chunk.voiced`` must be the VAD's decision: ``pause()``/``finalize()`` rely on it to
        tell whether the caller spoke after a pause."""

    def set_hints(self, hints: SpeechHints) -> None:
        """Tell the recogniser what it should expect in the caller's next utterance."""

    def pause(self) -> None:
        """The caller has been silent for a moment inside a turn: finish recognising what was
        heard so far now, without waiting for the turn to end. Non-blocking (called on the
        event loop); the result arrives as ``Heard(final=True)`` on ``events()`` and is kept,
        so a ``finalize()`` with no voiced frame pushed since returns it at once, and one with
        more speech returns the kept words followed by the rest. A pause with nothing voiced
        since the last pause or turn end does nothing; so does a pause while ``finalize()`` is
        waiting."""

    def words_pending(self) -> bool:
        """Whether words about audio already pushed are on their way as ``Heard(final=True)``
        (a pause's flush or decode in flight). The turn detector lets a silence that would end
        the turn wait for them a little: the reply needs those words anyway, and they may say
        the caller is not done. Cheap: asked at most once per frame, and only in a pause."""

    async def finalize(self) -> Transcript:
        """The turn has ended: return the final transcript of the audio pushed since the
        previous ``finalize`` (empty text when nothing was recognised) and start afresh."""

    def events(self) -> AsyncIterator[SttEvent]:
        """``Heard`` and ``SpeechEnded`` events of the current turn until the stream closes.
        No ``Heard`` is sent for a turn's final transcript (``finalize()`` returns it)."""

    def interim(self) -> AsyncIterator[Transcript]:
        """Interim (and final) results as they arrive, for barge-in and early starts."""

    async def aclose(self) -> None: ...


@runtime_checkable
class PlainSttStream(Protocol):
    """The recognition stream of plug-ins written before ``pause()`` and ``events()``
    existed. ``with_events`` makes one a full ``SttStream``."""

    def push_audio(self, chunk: AudioChunk) -> None: ...

    def set_hints(self, hints: SpeechHints) -> None: ...

    async def finalize(self) -> Transcript: ...

    def interim(self) -> AsyncIterator[Transcript]: ...

    async def aclose(self) -> None: ...


def with_events(stream: PlainSttStream) -> SttStream:
    """``stream`` itself when it has ``pause()`` and ``events()``; otherwise a wrapper whose
    ``pause()`` does nothing and whose ``events()`` turns the stream's interim transcripts
    into ``Heard(final=False)`` (there is no ``SpeechEnded``: the turn then ends on silence).
    Call it on every stream a provider opens, so an older plug-in keeps working."""
    if isinstance(stream, SttStream):
        return stream
    return _PlainStreamEvents(stream)


class _PlainStreamEvents:
    """``with_events``'s wrapper: the plug-in's methods, plus safe ``pause``/``events``."""

    __slots__ = ("_stream", "finalize", "interim", "push_audio", "set_hints")

    def __init__(self, stream: PlainSttStream) -> None:
        self._stream = stream
        self.push_audio = stream.push_audio  # bound once: called every 20 ms
        self.set_hints = stream.set_hints
        self.finalize = stream.finalize
        self.interim = stream.interim

    def pause(self) -> None:
        return None

    def words_pending(self) -> bool:
        return False  # a plain stream publishes no pause answers

    async def events(self) -> AsyncIterator[SttEvent]:
        async for transcript in self._stream.interim():
            if not transcript.is_final:  # a final is finalize()'s answer, not an event
                yield Heard(transcript.text, final=False)

    async def aclose(self) -> None:
        await self._stream.aclose()


class SpeechToText(Protocol):
    def open_stream(self, *, call_sid: str) -> SttStream: ...


class TextToSpeech(Protocol):
    """Synthesis of one piece of text to 8 kHz G.711 mu-law, streamed in chunks of any size."""

    def synthesize(self, text: str) -> AsyncIterator[bytes]: ...


class AsyncResource(Protocol):
    """A provider that holds processes, sockets or sessions for the server's lifetime."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class ResourceContext:
    """Mixin: ``async with`` for an ``AsyncResource`` (enter = ``start()``, exit = ``aclose()``).
    ``start`` opens nothing unless the class says otherwise; ``aclose`` is the class's own."""

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# ---- chat models (OpenAI-compatible and others) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant" | "tool"
    content: str
    tool_call_id: str | None = None  # role "tool": which call this answers
    tool_calls: tuple[ToolCall, ...] = ()  # role "assistant": calls it made


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters_json: str  # a JSON Schema object, as JSON text (keeps the message hashable)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallsReady:
    """Every tool call of the generation, assembled (arguments complete)."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class ChatFinished:
    reason: str  # "stop" | "length" | "tool_calls" | "content_filter"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


ChatEvent = TextDelta | ToolCallsReady | ChatFinished


class ChatModel(Protocol):
    def stream(
        self, messages: tuple[ChatMessage, ...], *, tools: tuple[ToolSpec, ...] = ()
    ) -> AsyncGenerator[ChatEvent, None]:
        """Stream one generation. Closing the iterator early cancels it (barge-in): tool calls
        of a cancelled generation are never yielded. Failures raise ProviderError."""
