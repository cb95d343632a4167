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
from typing import Protocol, Self


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One inbound 20 ms frame of caller audio, in both representations.

    ``voiced`` is the session's VAD decision for this frame; a local recogniser uses it to
    skip silence, a cloud one may ignore it.
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


@dataclass(frozen=True, slots=True)
class Transcript:
    """A recogniser result. ``is_final`` means this text will not change."""

    text: str
    is_final: bool
    confidence: float | None = None


class SttStream(Protocol):
    """One recognition stream for the length of a call."""

    def push_audio(self, chunk: AudioChunk) -> None:
        """Queue one frame. Must not block: called on the event loop every 20 ms."""

    def set_hints(self, hints: SpeechHints) -> None:
        """Tell the recogniser what it should expect in the caller's next utterance."""

    async def finalize(self) -> Transcript:
        """The turn has ended: return the final transcript of the audio pushed since the
        previous ``finalize`` (empty text when nothing was recognised) and start afresh."""

    def interim(self) -> AsyncIterator[Transcript]:
        """Interim (and final) results as they arrive, for barge-in and early starts."""

    async def aclose(self) -> None: ...


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
