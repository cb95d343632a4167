"""The ElevenLabs emulator speaks the vendor's protocol: driven here by a bare aiohttp client."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import orjson
import pytest

from slotline.audio.mulaw import decode_array
from slotline.providers.emulators.elevenlabs import ElevenLabsEmulator, Fault, Latency

KEY = "emulator-key"
PATH = "/v1/text-to-speech/voice1"
QUERY = "?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
SENTENCE = "Your appointment is confirmed for Tuesday at three."


@pytest.fixture
async def emulator() -> AsyncIterator[ElevenLabsEmulator]:
    async with ElevenLabsEmulator(api_key=KEY) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(
    http: aiohttp.ClientSession, emulator: ElevenLabsEmulator, route: str = "multi-stream-input"
) -> aiohttp.ClientWebSocketResponse:
    url = f"{emulator.base_url}{PATH}/{route}{QUERY}"
    return await http.ws_connect(url, headers={"xi-api-key": KEY})


async def send(ws: aiohttp.ClientWebSocketResponse, **body: object) -> None:
    await ws.send_str(orjson.dumps(body).decode())


async def until_final(
    ws: aiohttp.ClientWebSocketResponse, context_id: str | None
) -> tuple[bytes, str]:
    """Audio and aligned text of one context, read until its isFinal."""
    audio = bytearray()
    chars: list[str] = []
    while True:
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        body = orjson.loads(message.data)
        assert body.get("contextId") == context_id
        if body.get("isFinal"):
            return bytes(audio), "".join(chars)
        chunk = base64.b64decode(body["audio"])
        alignment = body["normalizedAlignment"]
        assert len(alignment["chars"]) == len(alignment["charStartTimesMs"])
        # times are relative to the chunk they come with
        assert all(0 <= start < len(chunk) / 8 for start in alignment["charStartTimesMs"])
        audio += chunk
        chars += alignment["chars"]


def voiced_fraction(audio: bytes) -> float:
    frames = decode_array(audio[: len(audio) // 160 * 160]).astype(np.float64).reshape(-1, 160)
    return float(np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 300))


async def test_a_context_speaks_its_text_and_ends_with_is_final(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, emulator) as ws:
        await send(ws, text=" ", context_id="c1", voice_settings={"stability": 0.5})
        await send(ws, text=SENTENCE + " ", context_id="c1", flush=True)
        await send(ws, context_id="c1", close_context=True)
        audio, text = await until_final(ws, "c1")
        assert 1.5 < len(audio) / 8000 < 6.0
        assert voiced_fraction(audio) > 0.5
        assert text == SENTENCE + " "  # the space after a piece is aligned too
        # the socket outlives the context
        await send(ws, text="Goodbye. ", context_id="c2", flush=True)
        await send(ws, context_id="c2", close_context=True)
        audio, text = await until_final(ws, "c2")
        assert text == "Goodbye. " and len(audio) > 2000
    assert emulator.counters.connections == 1
    assert emulator.counters.contexts_opened == emulator.counters.contexts_closed == 2
    assert emulator.counters.chars_received == len(SENTENCE) + len(" Goodbye. ") + 1


async def test_text_waits_for_the_schedule_or_a_flush(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, emulator) as ws:
        await send(ws, text=" ", context_id="c", generation_config={"chunk_length_schedule": [50]})
        await send(ws, text="Short text. ", context_id="c")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.2)  # 12 characters are under the threshold
        await send(
            ws, text="And now enough words to pass fifty characters in all. ", context_id="c"
        )
        message = orjson.loads((await ws.receive(timeout=5)).data)  # no flush needed
        first = "".join(message["normalizedAlignment"]["chars"])
        await send(ws, text="Tail", context_id="c", flush=True)
        await send(ws, context_id="c", close_context=True)
        _, rest = await until_final(ws, "c")
        spoken = "Short text. And now enough words to pass fifty characters in all."
        assert first + rest == spoken + " Tail "


async def test_close_context_speaks_held_text_before_is_final(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, emulator) as ws:
        await send(ws, text="Held without a flush. ", context_id="h")
        await send(ws, context_id="h", close_context=True)
        audio, text = await until_final(ws, "h")
        assert text == "Held without a flush. " and audio


async def test_a_sixth_live_context_closes_the_socket(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, emulator) as ws:
        for index in range(6):
            await send(ws, text=" ", context_id=f"c{index}")
        message = await ws.receive(timeout=5)
        assert orjson.loads(message.data)["error"] == "max_active_conversations"
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1008


async def test_single_context_route(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, emulator, "stream-input") as ws:
        await send(ws, text=" ")
        await send(ws, text="Hello there. ", flush=True)
        await send(ws, text="")  # end of input: speak the rest, isFinal, close
        audio, text = await until_final(ws, None)
        assert text == "Hello there. " and audio
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE


async def test_idle_socket_is_closed_after_the_inactivity_timeout(
    http: aiohttp.ClientSession,
) -> None:
    async with ElevenLabsEmulator(api_key=KEY, inactivity_timeout_s=0.2) as emulator:
        async with await connect(http, emulator) as ws:
            error = orjson.loads((await ws.receive(timeout=5)).data)
            assert error["error"] == "inactivity_timeout"
            assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE


async def test_malformed_client_message_is_refused(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    async with await connect(http, emulator) as ws:
        await ws.send_str('{"text": 5}')
        assert orjson.loads((await ws.receive(timeout=5)).data)["error"] == "invalid_message"
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE


@pytest.mark.parametrize("route", ["multi-stream-input", "stream-input"])
async def test_handshake_needs_the_key_and_ulaw(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession, route: str
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{emulator.base_url}{PATH}/{route}{QUERY}")
    assert refused.value.status == 401
    url = f"{emulator.base_url}{PATH}/{route}?output_format=mp3_44100"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, headers={"xi-api-key": KEY})
    assert refused.value.status == 422
    emulator.inject(Fault.WS_UNAVAILABLE)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(http, emulator, route)
    assert refused.value.status == 503
    assert emulator.counters.connections == 0


async def test_dropped_socket_fault_cuts_the_connection(
    emulator: ElevenLabsEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.inject(Fault.DROP_SOCKET)
    async with await connect(http, emulator) as ws:
        await send(ws, text=SENTENCE + " ", context_id="d", flush=True)
        await send(ws, context_id="d", close_context=True)
        while (message := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
            assert not orjson.loads(message.data).get("isFinal")  # cut before the end
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_first_byte_delay_is_applied(http: aiohttp.ClientSession) -> None:
    async with ElevenLabsEmulator(api_key=KEY, latency=Latency(first_byte_delay_ms=150)) as em:
        async with await connect(http, em) as ws:
            loop = asyncio.get_running_loop()
            await send(ws, text="Hello. ", context_id="l", flush=True)
            sent_at = loop.time()
            await ws.receive(timeout=5)
            assert loop.time() - sent_at >= 0.14  # a floor, not a budget


async def test_rest_stream(emulator: ElevenLabsEmulator, http: aiohttp.ClientSession) -> None:
    url = f"{emulator.http_base_url}{PATH}/stream?output_format=ulaw_8000"
    headers = {"xi-api-key": KEY}
    body = {"text": SENTENCE, "model_id": "eleven_flash_v2_5"}
    async with http.post(url, json=body, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        audio = await response.read()
    assert 1.5 < len(audio) / 8000 < 6.0 and voiced_fraction(audio) > 0.5
    async with http.post(url, json=body) as response:
        assert response.status == 401
    async with http.post(url, json={"text": ""}, headers=headers) as response:
        assert response.status == 422
    for fault, status in ((Fault.REST_429, 429), (Fault.REST_500, 500)):
        emulator.inject(fault)
        async with http.post(url, json=body, headers=headers) as response:
            assert response.status == status
    assert emulator.counters.rest_requests == 1
