"""The vendor emulators serve the 8 kHz PCM formats the real vendors serve and Pipecat's services
ask for (so ``slotline bench --target`` can measure Pipecat against the same emulators): Deepgram
decodes ``encoding=linear16&sample_rate=8000`` as it decodes mu-law, and ElevenLabs speaks
``output_format=pcm_8000`` on its WebSocket as the same speech in 16-bit PCM."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect

from slotline.audio.mulaw import ulaw_to_pcm16
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.emulators.elevenlabs import ElevenLabsEmulator
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import TEXTS, caller_frames

KEY = "emulator-key"
QUERY = "model=nova-3&sample_rate=8000&channels=1&endpointing=300"


async def final_transcripts(dg: DeepgramEmulator, encoding: str, audio: bytes) -> list[str]:
    url = f"{dg.url}/v1/listen?{QUERY}&encoding={encoding}"
    async with connect(url, additional_headers={"Authorization": f"Token {KEY}"}) as ws:
        for start in range(0, len(audio), 800):
            await ws.send(audio[start : start + 800])
        await ws.send('{"type": "CloseStream"}')
        messages = [orjson.loads(m) async for m in ws]
    return [m["channel"]["alternatives"][0]["transcript"] for m in messages
            if m["type"] == "Results" and m["is_final"] and
            m["channel"]["alternatives"][0]["transcript"]]


async def test_deepgram_decodes_linear16_like_mulaw() -> None:
    ulaw = b"".join(c.ulaw for c in caller_frames("name_john", lead_ms=400, tail_ms=800))
    async with LocalSpeechToText() as recognizer, DeepgramEmulator(
        api_key=KEY, recognizer=recognizer
    ) as dg:
        as_pcm = await final_transcripts(dg, "linear16", ulaw_to_pcm16(ulaw))
        as_ulaw = await final_transcripts(dg, "mulaw", ulaw)
    assert as_pcm == as_ulaw == [TEXTS["name_john"]]


@pytest.fixture
async def eleven() -> AsyncIterator[ElevenLabsEmulator]:
    async with ElevenLabsEmulator(api_key=KEY) as running:
        yield running


async def spoken(emulator: ElevenLabsEmulator, output_format: str) -> bytes:
    url = (f"{emulator.base_url}/v1/text-to-speech/v1/multi-stream-input"
           f"?model_id=eleven_flash_v2_5&output_format={output_format}")
    audio = bytearray()
    async with aiohttp.ClientSession() as http, http.ws_connect(
        url, headers={"xi-api-key": KEY}
    ) as ws:
        await ws.send_str('{"text": " ", "context_id": "c"}')
        await ws.send_str('{"text": "See you on Tuesday. ", "context_id": "c", "flush": true}')
        await ws.send_str('{"context_id": "c", "close_context": true}')
        while not (body := orjson.loads((await ws.receive(timeout=10)).data)).get("isFinal"):
            audio += base64.b64decode(body["audio"])
    return bytes(audio)


async def test_elevenlabs_speaks_pcm_8000_as_the_same_speech(
    eleven: ElevenLabsEmulator,
) -> None:
    ulaw = await spoken(eleven, "ulaw_8000")
    pcm = await spoken(eleven, "pcm_8000")
    # espeak's output varies by a sample or two between runs: the same length within 10 ms
    assert len(ulaw) > 8000 and abs(len(pcm) - 2 * len(ulaw)) <= 2 * 80
    samples = np.frombuffer(pcm, "<i2")
    mulaw_levels = np.frombuffer(ulaw_to_pcm16(bytes(range(256))), "<i2")
    assert np.isin(samples, mulaw_levels).all()  # the mu-law speech, decoded
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 300  # speech, not silence


async def test_elevenlabs_serves_pcm_8000_only_on_its_websockets(
    eleven: ElevenLabsEmulator,
) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{eleven.base_url}/v1/text-to-speech/v1/stream?output_format=pcm_8000"
        async with http.post(url, json={"text": "Hi."}, headers={"xi-api-key": KEY}) as response:
            assert response.status == 422
        url = f"{eleven.base_url}/v1/text-to-speech/v1/multi-stream-input?output_format=pcm_16000"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers={"xi-api-key": KEY})
        assert refused.value.status == 422
