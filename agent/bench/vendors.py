"""The three cloud vendors on their local emulators, slowed down by a latency profile.

Deepgram (speech-to-text), an OpenAI-compatible LLM and ElevenLabs (speech) run on loopback;
``server_env()`` gives the ``SLOTLINE_*`` settings and keys that point a Slotline server at
them. The emulators do real work (pocketsphinx decodes, espeak speaks), which on a small machine
would compete with the server being measured. The bench caller says the same few utterances
over and over, so decodes and syntheses are memoised: a repeat costs nothing and the vendor's
delay is exactly the profile's (``stt_memo``: a span cut a little differently under load gets
the known transcript; a real decode of a known utterance is counted, ``stt_redecodes``, and the
report says so loudly). Run as ``python -m slotline.agent.bench.vendors PROFILE_JSON`` the
emulators live in a process of their own (their CPU is then not the server's): it prints one
JSON line ``{"env": {...}, "pid": N}`` and serves until its stdin closes; then it prints
``{"stats": {...}, "loop_lag_ms": {...}}`` (what the vendors were asked; how late its event
loop ran, for the report's harness section). A second argument names a file the transcript
memo is read from at start and written to at the end (the bench passes ``memo_path()``, so a
warm bench decodes nothing). PROFILE may also be a profile's name or YAML file
(``python -m slotline.agent.bench.vendors cloud``), to point another server at the same
emulators (README: Pipecat under the same harness).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import pickle
import sys
import tempfile
from collections import OrderedDict
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from slotline.agent.bench.harness import LoopLagMonitor
from slotline.agent.bench.profiles import Profile, load_profile
from slotline.agent.bench.stt_memo import Key, TranscriptMemo, key_of
from slotline.agent.server import event_loop
from slotline.agent.server.heap import frozen_heap
from slotline.providers.base import SpeechHints
from slotline.providers.emulators import elevenlabs as eleven_emu
from slotline.providers.emulators import openai as openai_emu
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.stt._sphinx_wire import DecodeResult
from slotline.providers.stt.local import LocalSpeechToText

logger = logging.getLogger(__name__)

# Keys the emulators accept; they only ever travel over loopback.
KEYS = {"DEEPGRAM_API_KEY": "bench-dg", "OPENAI_API_KEY": "sk-bench",
        "ELEVENLABS_API_KEY": "bench-xi"}
VOICE_ID = "bench-voice"
_MEMO_ENTRIES = 4096  # distinct utterances (and their partial decodes) kept


class _MemoRecognizer(LocalSpeechToText):
    """The emulator's recogniser, remembering each distinct audio span's transcript
    (``stt_memo``: exact, or a near cut of a known utterance)."""

    def __init__(self) -> None:
        super().__init__(workers=2)
        self.memo: TranscriptMemo[DecodeResult] = TranscriptMemo(_MEMO_ENTRIES)
        # Decodes under way, by exact key: the callers of a ramp say their first line at
        # nearly the same time, and one decode serves them all.
        self._pending: dict[bytes, asyncio.Future[DecodeResult]] = {}

    def submit(self, pcm16: bytes, hints: SpeechHints) -> asyncio.Future[DecodeResult] | None:
        key = key_of(pcm16)
        pending = self._pending.get(key.exact)
        if pending is not None:
            self.memo.counts["hit"] += 1
            return _follow(pending)
        found, cached = self.memo.lookup(key)
        if cached is not None:
            done: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()
            done.set_result(cached)
            return done
        if found == "redecode":
            logger.warning("deepgram emulator: a known utterance cut %d bytes differently is "
                           "decoded for real (the harness's CPU, not the server's)", key.length)
        future = super().submit(pcm16, hints)
        if future is not None:
            self._pending[key.exact] = future
            future.add_done_callback(lambda f: self._remember(key, f))
        return future

    def _remember(self, key: Key, future: asyncio.Future[DecodeResult]) -> None:
        self._pending.pop(key.exact, None)
        if future.cancelled() or future.exception() is not None:
            return
        self.memo.remember(key, future.result())


def _follow(source: asyncio.Future[DecodeResult]) -> asyncio.Future[DecodeResult]:
    """A future of its own with ``source``'s outcome (cancelling it leaves ``source`` be)."""
    copy: asyncio.Future[DecodeResult] = asyncio.get_running_loop().create_future()

    def done(finished: asyncio.Future[DecodeResult]) -> None:
        if copy.done():
            return
        if finished.cancelled():
            copy.cancel()
        elif (error := finished.exception()) is not None:
            copy.set_exception(error)
        else:
            copy.set_result(finished.result())

    source.add_done_callback(done)
    return copy


class _MemoElevenLabs(eleven_emu.ElevenLabsEmulator):
    """The ElevenLabs emulator, synthesising each distinct text once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spoken: OrderedDict[str, bytes] = OrderedDict()

    async def speak(self, text: str) -> bytes:
        audio = self._spoken.get(text)
        if audio is None:
            audio = await super().speak(text)
            self._spoken[text] = audio
            while len(self._spoken) > _MEMO_ENTRIES:
                self._spoken.popitem(last=False)
        return audio


def memo_path() -> Path:
    """Where the bench keeps the emulator's transcripts between runs: a file per version of
    the recogniser's code (its output may change with it) and of the memo's keys, in the
    temporary directory."""
    from slotline.agent.bench import stt_memo
    from slotline.providers.stt import _sphinx_worker, local

    digest = hashlib.blake2b(digest_size=8)
    for module in (local, _sphinx_worker, stt_memo):
        digest.update(Path(module.__file__ or "").read_bytes())
    return Path(tempfile.gettempdir()) / f"slotline-bench-stt-memo-{digest.hexdigest()}.pickle"


def _read_memo(path: Path) -> list[tuple[Key, DecodeResult]]:
    try:
        entries = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
        return []  # no file yet, or one this code cannot read: start empty
    return entries if isinstance(entries, list) else []


def _write_memo(path: Path, entries: list[tuple[Key, DecodeResult]]) -> None:
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        scratch.write_bytes(pickle.dumps(entries))
        scratch.replace(path)  # whole or not at all, when two benches end at once


class EmulatedVendors:
    """``async with EmulatedVendors(profile) as vendors: vendors.server_env()``."""

    def __init__(self, profile: Profile, *, memo_path: Path | None = None) -> None:
        self.profile = profile
        self._stack = AsyncExitStack()
        self._recognizer = _MemoRecognizer()
        self._memo_path = memo_path
        self._memo_loaded = 0
        if memo_path is not None:
            entries = _read_memo(memo_path)
            self._recognizer.memo.load(entries)
            self._memo_loaded = len(entries)
        stt = profile.stt
        self.deepgram = DeepgramEmulator(
            api_key=KEYS["DEEPGRAM_API_KEY"], recognizer=self._recognizer,
            finalize_delay_ms=stt.finalize_ms, result_delay_ms=stt.result_ms,
            jitter_ms=stt.jitter_ms,
            # Interim results re-decode the partial utterance; Slotline ends turns with its own
            # VAD and Finalize, so interims only cost the emulator CPU. One a second is plenty.
            interim_every_ms=1000, idle_timeout_s=30.0,
        )
        llm = profile.llm
        self.openai = openai_emu.OpenAIEmulator(
            api_key=KEYS["OPENAI_API_KEY"],
            latency=openai_emu.Latency(llm.first_token_ms, llm.token_interval_ms, llm.jitter_ms),
        )
        tts = profile.tts
        self.elevenlabs = _MemoElevenLabs(
            api_key=KEYS["ELEVENLABS_API_KEY"],
            latency=eleven_emu.Latency(tts.first_byte_ms, tts.chunk_interval_ms, tts.jitter_ms),
        )

    async def __aenter__(self) -> Self:
        try:
            await self._stack.enter_async_context(self._recognizer)
            await self._stack.enter_async_context(self.deepgram)
            await self._stack.enter_async_context(self.openai)
            await self._stack.enter_async_context(self.elevenlabs)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()
        if self._memo_path is not None:
            _write_memo(self._memo_path, self._recognizer.memo.entries())

    def server_env(self) -> dict[str, str]:
        """Settings and keys that send a Slotline server's vendors here."""
        return {
            "SLOTLINE_STT__PROVIDER": "deepgram",
            "SLOTLINE_STT__BASE_URL": self.deepgram.url,
            "SLOTLINE_LLM__PROVIDER": "openai",
            "SLOTLINE_LLM__BASE_URL": self.openai.base_url,
            "SLOTLINE_TTS__PROVIDER": "elevenlabs",
            "SLOTLINE_TTS__BASE_URL": self.elevenlabs.base_url,
            "SLOTLINE_TTS__VOICE_ID": VOICE_ID,
            **KEYS,
        }

    def stats(self) -> dict[str, int]:
        """What the vendors were asked (a zero says the server did not use that vendor)."""
        counts = self._recognizer.memo.counts
        return {
            "stt_connections": self.deepgram.stats.connections,
            "stt_finalizes": self.deepgram.stats.finalizes,
            "stt_configures": self.deepgram.stats.configures,  # keyterm updates, per question
            "stt_configure_failures": sum(self.deepgram.stats.configure_failures.values()),
            "stt_decodes": counts["decode"] + counts["redecode"],  # real pocketsphinx decodes
            "stt_decodes_memoised": counts["hit"],
            "stt_decodes_near": counts["near"],  # a known utterance cut a little differently
            "stt_redecodes": counts["redecode"],  # ... cut too differently: decoded for real
            "stt_memo_loaded": self._memo_loaded,  # transcripts known from earlier runs
            "llm_requests": self.openai.stats.requests,
            "tts_connections": self.elevenlabs.counters.connections,
            "tts_contexts": self.elevenlabs.counters.contexts_opened,
        }


async def _serve(profile: Profile, memo: Path | None) -> None:
    async with EmulatedVendors(profile, memo_path=memo) as vendors:
        print(json.dumps({"env": vendors.server_env(), "pid": os.getpid()}), flush=True)
        loop = asyncio.get_running_loop()
        lag = LoopLagMonitor()
        watching = asyncio.create_task(lag.run(), name="vendors-loop-lag")
        with frozen_heap():  # the emulators have started: full scans skip what they loaded
            await loop.run_in_executor(None, sys.stdin.read)  # the parent closes it: stop
        watching.cancel()
        print(json.dumps({"stats": vendors.stats(), "loop_lag_ms": lag.summary()}), flush=True)


def _profile(arg: str) -> Profile:
    """The bench passes the profile as JSON; a person may name one (``cloud``) or a YAML file."""
    if arg.lstrip().startswith("{"):
        return Profile.from_dict(json.loads(arg))
    return load_profile(arg)


if __name__ == "__main__":
    event_loop.run(_serve(_profile(sys.argv[1] if len(sys.argv) > 1 else "cloud"),
                       Path(sys.argv[2]) if len(sys.argv) > 2 else None))
