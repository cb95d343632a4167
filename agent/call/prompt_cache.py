"""Audio of the agent's fixed sentences, synthesized once per voice and played from memory.

Most of what a flow says never changes between calls ("May I have your name?"), and neither do
the fillers the session says while a slow lookup runs. Synthesizing them on every call costs a
TTS round trip (150 ms and more with a cloud voice) on the critical path of a turn. So:

* ``static_sentences`` splits a template the way the session speaks it (one sentence at a time)
  and keeps the sentences that use no ``{variable}`` — those are the same on every call.
* ``PromptCache`` holds their 8 kHz mu-law audio per (voice, sentence), LRU-bounded by bytes,
  for the life of the process. Only registered (static) sentences are ever stored: text
  rendered with a caller's name or e-mail never lands in a cache that outlives the call.
* ``warm`` synthesizes the registered sentences that are missing, one at a time, in the
  background; a sentence spoken before it was warmed is stored when it is first spoken.
* ``CallVoice`` is how a call speaks a sentence: cache, the call's TTS, its fallback. It can
  also synthesize a sentence the call will likely say soon (``prepare``: a booking's
  confirmation while the caller answers the read-back), kept for that call only, so saying it
  later costs no TTS round trip.

The session owns the policy (when to warm, which voice); this module does no I/O of its own
except through the ``TextToSpeech`` it is handed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol, runtime_checkable

from slotline.agent.flow.templates import TemplateError, render, template_variables
from slotline.providers.base import TextToSpeech
from slotline.providers.errors import ProtocolError, ProviderError

log = logging.getLogger(__name__)

# What the agent says while the caller waits on a slow lookup (order = order of use).
FILLERS = ("Let me check that for you.", "One moment.")
# 8 MiB of mu-law is ~17 minutes of speech: every prompt of dozens of flows, several voices.
DEFAULT_MAX_BYTES = 8 << 20
# Sentences a call keeps synthesized ahead (``CallVoice.prepare``); the oldest gives way
MAX_AHEAD = 2

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences the session synthesizes ``text`` as, in order."""
    return [sentence for sentence in _SENTENCE_END.split(text.strip()) if sentence]


def static_sentences(template: str) -> list[str]:
    """The sentences of ``template`` that use no variable, as they will be spoken."""
    found: list[str] = []
    for sentence in split_sentences(template):
        try:
            if template_variables(sentence):
                continue
        except TemplateError:  # a brace split across sentences: not worth caching
            continue
        found.append(render(sentence, {}))
    return found


@runtime_checkable
class StaticPrompts(Protocol):
    """A responder that can list what it will say on every call (templates allowed), as
    ``agent.flow.responder.FlowResponder`` does from its flow."""

    def static_prompts(self) -> Iterable[str]: ...


def prompts_of(responder: object) -> tuple[str, ...]:
    """The static sentences ``responder`` may say (none when it cannot tell)."""
    if not isinstance(responder, StaticPrompts):
        return ()
    texts = responder.static_prompts()
    return tuple(dict.fromkeys(s for text in texts for s in static_sentences(text)))


def voice_key(tts: TextToSpeech) -> str:
    """Which voice audio belongs to. A cache lives with the providers of one server, so the
    provider object (with its class, for logs) names the voice."""
    return f"{type(tts).__qualname__}@{id(tts):x}"


class PromptCache:
    """LRU of mu-law audio per (voice, sentence), bounded by ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._audio: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._static: set[str] = set()
        self._warming: set[tuple[str, str]] = set()
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.warmed = 0  # sentences synthesized by ``warm``

    def register(self, sentences: Iterable[str]) -> None:
        """Mark ``sentences`` as the same on every call: they may be stored."""
        self._static.update(sentences)

    def cacheable(self, sentence: str) -> bool:
        return sentence in self._static

    def get(self, voice: str, sentence: str) -> bytes | None:
        audio = self._audio.get((voice, sentence))
        if audio is None:
            self.misses += 1
            return None
        self._audio.move_to_end((voice, sentence))
        self.hits += 1
        return audio

    def put(self, voice: str, sentence: str, audio: bytes) -> bool:
        """Store a registered sentence's complete audio; returns whether it was stored."""
        if not audio or sentence not in self._static or len(audio) > self.max_bytes:
            return False
        key = (voice, sentence)
        old = self._audio.pop(key, None)
        if old is not None:
            self.size_bytes -= len(old)
        self._audio[key] = audio
        self.size_bytes += len(audio)
        while self.size_bytes > self.max_bytes:
            _, evicted = self._audio.popitem(last=False)
            self.size_bytes -= len(evicted)
            self.evictions += 1
        return True

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._audio

    def __len__(self) -> int:
        return len(self._audio)

    async def warm(self, voice: str, tts: TextToSpeech, sentences: Iterable[str]) -> int:
        """Synthesize the registered ``sentences`` not cached yet (nor being warmed by another
        call), one at a time; returns how many were stored. A failing TTS stops the warm-up
        (the call will find out, and report it, when it speaks)."""
        stored = 0
        for sentence in sentences:
            key = (voice, sentence)
            if key in self._audio or key in self._warming or sentence not in self._static:
                continue
            self._warming.add(key)
            try:
                parts = [audio async for audio in tts.synthesize(sentence)]
            except (ProviderError, ProtocolError) as exc:  # the call reports it if it speaks
                log.info("prompt warm-up stopped: %s", exc)
                return stored
            finally:
                self._warming.discard(key)
            if self.put(voice, sentence, b"".join(parts)):
                stored += 1
                self.warmed += 1
        return stored


class _AbandonedError(ProviderError):
    """A synthesis ahead stopped by its call's end, not by the TTS."""


_ABANDONED = _AbandonedError("tts", "synthesis ahead abandoned")


class _Ahead:
    """One sentence being synthesized ahead: its audio so far, and how it ended."""

    __slots__ = ("_more", "error", "parts", "running")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.running = True
        self.error: ProviderError | ProtocolError | None = None  # how it failed
        self._more = asyncio.Event()

    def add(self, part: bytes) -> None:
        self.parts.append(part)
        self._more.set()

    def end(self, error: ProviderError | ProtocolError | None) -> None:
        self.running, self.error = False, error
        self._more.set()

    async def more(self) -> None:
        """Until more audio comes, or the synthesis ends."""
        self._more.clear()
        await self._more.wait()


class CallVoice:
    """One call's voice: the prompt cache first, then the call's TTS, then — once that has
    failed in this call — the fallback TTS (the sentence that failed is spoken again in full:
    a repeat is better than silence). Complete audio of a cacheable sentence is cached."""

    def __init__(
        self,
        cache: PromptCache,
        tts: TextToSpeech,
        fallback: TextToSpeech | None,
        on_failure: Callable[[ProviderError], None],
        on_ahead: Callable[[str], object] | None = None,
    ) -> None:
        self._on_ahead = on_ahead  # hears "made" and "used" (``prepare``)
        self._cache = cache
        self._tts = tts
        self._fallback = fallback
        self._on_failure = on_failure
        self.voice = voice_key(tts)
        self._fallback_voice = "" if fallback is None else voice_key(fallback)
        self.failed = False  # the call's TTS failed: the fallback speaks from now on
        self.from_cache = False  # the last sentence came from the cache
        # sentences synthesized ahead (``prepare``), this call's only
        self._ahead: dict[str, _Ahead] = {}

    async def prepare(self, text: str) -> None:
        """Synthesize ``text`` now with the call's TTS, for ``synthesize`` to play as it comes
        when the call says it. Nothing when it is cached already, being prepared, or the TTS
        has failed in this call; a failing TTS here is only logged (the call finds out, and
        reports it, if it says the sentence). Cancelled with the call's other tasks."""
        cache = self._cache
        if self.failed or text in self._ahead or (
            cache.cacheable(text) and (self.voice, text) in cache
        ):
            return
        while len(self._ahead) >= MAX_AHEAD:
            del self._ahead[next(iter(self._ahead))]  # the oldest gives way (left to finish)
        ahead = self._ahead[text] = _Ahead()
        try:
            async for part in self._tts.synthesize(text):
                ahead.add(part)
        except (ProviderError, ProtocolError) as exc:
            log.info("synthesis ahead failed: %s", exc)
            ahead.end(exc)
            return
        except BaseException:
            ahead.end(_ABANDONED)
            raise
        finally:
            if ahead.error is not None and self._ahead.get(text) is ahead:
                del self._ahead[text]
        ahead.end(None)
        if self._on_ahead is not None:
            self._on_ahead("made")

    async def _from_ahead(self, ahead: _Ahead, text: str) -> AsyncIterator[bytes]:
        """``text``'s audio synthesized ahead, as it comes. Raises what its synthesis raised (as
        if the TTS failed now); abandoned before any audio (the call ending), it is asked for
        afresh."""
        sent = 0
        while True:
            while sent < len(ahead.parts):
                sent += 1
                yield ahead.parts[sent - 1]
            if not ahead.running:
                break
            await ahead.more()
        if ahead.error is None:
            if self._on_ahead is not None:
                self._on_ahead("used")
            return
        if ahead.error is not _ABANDONED:
            raise ahead.error
        if sent:
            raise ProviderError("tts", "synthesis ahead stopped mid-sentence")
        async for audio in self._tts.synthesize(text):
            yield audio

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        cache, fallback = self._cache, self._fallback
        self.from_cache = False
        ahead = self._ahead.pop(text, None) if self._ahead else None
        if cache.cacheable(text):
            voices = [self.voice]
            if self.failed and fallback is not None:
                voices.append(self._fallback_voice)
            for voice in voices:
                cached = cache.get(voice, text)
                if cached is not None:
                    self.from_cache = True
                    yield cached
                    return
        if not self.failed or fallback is None:
            parts: list[bytes] = []
            source = (self._tts.synthesize(text) if ahead is None or self.failed
                      else self._from_ahead(ahead, text))
            try:
                async for audio in source:
                    parts.append(audio)
                    yield audio
            except (ProviderError, ProtocolError) as exc:
                if fallback is None:
                    raise
                self.failed = True
                self._on_failure(
                    exc if isinstance(exc, ProviderError) else ProviderError("tts", str(exc))
                )
            else:
                cache.put(self.voice, text, b"".join(parts))
                return
        assert fallback is not None
        parts = []
        async for audio in fallback.synthesize(text):
            parts.append(audio)
            yield audio
        cache.put(self._fallback_voice, text, b"".join(parts))
