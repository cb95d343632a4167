"""The reconnect policy (providers/reconnect.py): its table, and both socket adapters obeying
an injected one over real sockets on 127.0.0.1 (Deepgram against a server refusing the
upgrade, ElevenLabs against its emulator refusing the handshake)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from slotline.providers.base import AudioChunk
from slotline.providers.emulators.elevenlabs import ElevenLabsEmulator, Fault
from slotline.providers.errors import ProviderAuthError, ProviderError, ProviderTimeout
from slotline.providers.reconnect import DEEPGRAM, ELEVENLABS, ReconnectPolicy, retryable_status
from slotline.providers.stt.deepgram import DeepgramSpeechToText
from slotline.providers.tts.elevenlabs import ElevenLabsTts


def middle() -> float:
    """A random source always at the middle of the jitter range: the nominal delay."""
    return 0.5


def test_deepgram_table_first_retry_at_once_then_doubling_to_the_cap() -> None:
    delays = [DEEPGRAM.delay_s(failures, middle) for failures in range(8)]
    assert delays == [0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert [DEEPGRAM.gives_up(failures) for failures in range(7)] == [False] * 6 + [True]


def test_elevenlabs_table_one_retry_at_once_then_ten_seconds_between_handshakes() -> None:
    assert ELEVENLABS.delay_s(0, middle) == 0.0
    assert [ELEVENLABS.delay_s(failures, middle) for failures in (1, 2, 5)] == [10.0] * 3
    assert not ELEVENLABS.gives_up(0) and ELEVENLABS.gives_up(1)


def test_jitter_spreads_around_the_nominal_delay_from_the_injected_source() -> None:
    assert DEEPGRAM.delay_s(3, lambda: 0.0) == pytest.approx(0.5 * 0.9)
    assert DEEPGRAM.delay_s(3, lambda: 0.999999) == pytest.approx(0.5 * 1.1)
    assert DEEPGRAM.delay_s(0, lambda: 0.999999) == 0.0  # at once stays at once
    draws = [DEEPGRAM.delay_s(5, random.Random(7).random) for _ in range(2)]
    assert draws[0] == draws[1]  # a seeded source gives the same schedule
    spread = {round(DEEPGRAM.delay_s(5, source), 6) for source in (random.Random(s).random
                                                                   for s in range(20))}
    assert len(spread) > 10 and all(1.8 <= delay < 2.2 for delay in spread)


def test_retries_only_retryable_errors_within_the_failures_allowed() -> None:
    policy = ReconnectPolicy(max_failures=2, base_delay_s=0.1, max_delay_s=1.0)
    dropped = ProviderError("x", "connection lost", retryable=True)
    assert [policy.retries(dropped, failures) for failures in range(4)] == [True] * 3 + [False]
    assert policy.retries(ProviderTimeout("x", "no answer"), 1)
    assert not policy.retries(ProviderAuthError("x", "HTTP 401"), 0)
    assert not policy.retries(ProviderError("x", "HTTP 400", retryable=False), 0)


def test_status_retryable_for_rate_limits_and_server_faults_only() -> None:
    assert [retryable_status(s) for s in (429, 500, 502, 503)] == [True] * 4
    assert [retryable_status(s) for s in (400, 401, 403, 404, 408)] == [False] * 5


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        ReconnectPolicy(max_failures=1, base_delay_s=0.1, max_delay_s=1.0, jitter=1.5)
    with pytest.raises(ValueError, match="negative"):
        ReconnectPolicy(max_failures=-1, base_delay_s=0.1, max_delay_s=1.0)


class RefusingServer:
    """Answers every WebSocket upgrade with HTTP 503 and counts them (with their times)."""

    def __init__(self) -> None:
        self.handshakes: list[float] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RefusingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.handshakes.append(asyncio.get_running_loop().time())
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                     b"Connection: close\r\n\r\n")
        await writer.drain()
        writer.close()


async def test_deepgram_stream_retries_a_refused_upgrade_as_its_policy_says() -> None:
    policy = ReconnectPolicy(max_failures=2, base_delay_s=0.1, max_delay_s=0.15)
    errors: list[ProviderError] = []
    async with RefusingServer() as server:
        stt = DeepgramSpeechToText("key", base_url=f"ws://127.0.0.1:{server.port}",
                                   reconnect=policy, on_error=errors.append)
        stream = stt.open_stream(call_sid="CAreconnect")
        stream.push_audio(AudioChunk(ulaw=b"\xff" * 160, pcm16=bytes(320), voiced=False))
        with pytest.raises(ProviderError) as failed:
            await stream.finalize()
        await stream.aclose()
    assert "HTTP 503" in failed.value.message and failed.value.retryable
    assert len(server.handshakes) == 3  # the first, then one retry per failure allowed
    assert len(errors) == 2  # the retried ones reported; the last one failed the stream
    waits = [b - a for a, b in zip(server.handshakes, server.handshakes[1:], strict=False)]
    assert waits[0] >= 0.1 and waits[1] >= 0.15  # 0.1, then 0.2 capped at 0.15


@pytest.fixture
async def emulator() -> AsyncIterator[ElevenLabsEmulator]:
    async with ElevenLabsEmulator(api_key="emulator-key") as running:
        yield running


async def test_elevenlabs_pool_waits_the_policy_delay_before_another_handshake(
    emulator: ElevenLabsEmulator,
) -> None:
    delay_s = 0.5
    policy = ReconnectPolicy(max_failures=0, base_delay_s=delay_s, max_delay_s=delay_s)
    tts = ElevenLabsTts("emulator-key", voice_id="voice1", base_url=emulator.base_url,
                        reconnect=policy)
    emulator.inject(Fault.WS_UNAVAILABLE)  # the warm socket's handshake only
    loop = asyncio.get_running_loop()
    await tts.start()  # refused: logged, the pool is down for delay_s
    refused_at = loop.time()
    try:
        asked_at = loop.time()
        async for _audio in tts.synthesize("One."):
            break
        assert asked_at - refused_at < delay_s  # this reply was asked for inside the delay
        assert emulator.counters.rest_requests == 1 and emulator.counters.connections == 0
        await asyncio.sleep(delay_s - (loop.time() - refused_at))
        async for _audio in tts.synthesize("Two."):
            break
        assert emulator.counters.connections == 1 and emulator.counters.rest_requests == 1
    finally:
        await tts.aclose()
