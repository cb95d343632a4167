"""A recognition stream that takes frames and does nothing: the benchmarks' baseline, where the
cost of everything but the recogniser is measured."""

from __future__ import annotations

from collections.abc import AsyncIterator

from slotline.providers.base import AudioChunk, SpeechHints, SttEvent, Transcript


class NullStream:
    """Takes frames, sends nothing, hears nothing."""

    def push_audio(self, chunk: AudioChunk) -> None:
        del chunk

    def set_hints(self, hints: SpeechHints) -> None:
        del hints

    async def finalize(self) -> Transcript:
        return Transcript(text="", is_final=True)

    async def interim(self) -> AsyncIterator[Transcript]:
        return
        yield

    def pause(self) -> None:
        return None

    def words_pending(self) -> bool:
        return False

    async def events(self) -> AsyncIterator[SttEvent]:
        return
        yield

    async def aclose(self) -> None:
        return None
