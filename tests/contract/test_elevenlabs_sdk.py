"""The official ``elevenlabs`` SDK (v2) as the client of our ElevenLabs emulator, over 127.0.0.1.

* ``POST /v1/text-to-speech/{voice}/stream``: ``AsyncElevenLabs(base_url=...)`` streams the
  emulator's audio and maps its refusals to the SDK's errors.
* ``stream-input``: the SDK's own realtime client (``convert_realtime``, synchronous, always
  ``wss``) against the emulator serving TLS with a certificate made here.
* ``multi-stream-input`` (what our adapter uses): the SDK has message models but no client for
  it, so a plain WebSocket sends the SDK's models as the SDK serialises them, and every server
  frame is validated strictly against the SDK's ``AudioOutputMulti``/``FinalOutputMulti``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from elevenlabs import VoiceSettings
from elevenlabs.client import AsyncElevenLabs, ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.types import (
    AudioOutputMulti,
    CloseContext,
    CloseSocket,
    FinalOutputMulti,
    GenerationConfig,
    InitializeConnectionMulti,
    RealtimeVoiceSettings,
    SendTextMulti,
)
from pydantic import BaseModel
from websockets.asyncio.client import connect

from slotline.providers.emulators.elevenlabs import BYTES_PER_MS, ElevenLabsEmulator, Fault

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "contract-test-key"
VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Your appointment is booked for Tuesday at ten."


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def eleven() -> AsyncIterator[ElevenLabsEmulator]:
    async with ElevenLabsEmulator(api_key=KEY) as emulator:
        yield emulator


def same_speech(audio: bytes, reference: bytes) -> bool:
    """espeak's rendering of a text varies run to run by a few samples (it is not bit-exact),
    so the same speech means the same duration within 10 ms, and real audio (not silence)."""
    return abs(len(audio) - len(reference)) <= 10 * BYTES_PER_MS and len(set(audio)) > 64


def sdk(emulator: ElevenLabsEmulator, http: httpx.AsyncClient, key: str = KEY) -> AsyncElevenLabs:
    return AsyncElevenLabs(api_key=key, base_url=emulator.http_base_url, httpx_client=http)


# ---- REST streaming ---------------------------------------------------------------------------


async def test_sdk_streams_the_emulators_speech_over_http(eleven: ElevenLabsEmulator) -> None:
    async with httpx.AsyncClient() as http:
        chunks = [chunk async for chunk in sdk(eleven, http).text_to_speech.stream(
            VOICE, text=TEXT, output_format="ulaw_8000", model_id="eleven_flash_v2_5",
            voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.75),
        )]
    audio = b"".join(chunks)
    assert len(chunks) > 1  # streamed in pieces, not one body
    assert same_speech(audio, await eleven.speak(TEXT))


@pytest.mark.parametrize(
    ("key", "fault", "output_format", "status"),
    [
        ("wrong-key", None, "ulaw_8000", 401),
        (KEY, None, "mp3_44100_128", 422),  # the emulator only encodes ulaw_8000
        (KEY, Fault.REST_429, "ulaw_8000", 429),
        (KEY, Fault.REST_500, "ulaw_8000", 500),
    ],
)
async def test_http_refusals_reach_the_sdk_as_api_errors(
    eleven: ElevenLabsEmulator, key: str, fault: Fault | None, output_format: str, status: int
) -> None:
    if fault is not None:
        eleven.inject(fault)
    async with httpx.AsyncClient() as http:
        with pytest.raises(ApiError) as raised:
            async for _ in sdk(eleven, http, key).text_to_speech.stream(
                VOICE, text=TEXT, output_format=output_format,
            ):
                pass
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict) and "detail" in raised.value.body


# ---- stream-input, through the SDK's realtime client over TLS ---------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (PEM certificate, PEM key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


def realtime(client: ElevenLabs, pieces: list[str]) -> bytes:
    def text() -> Iterator[str]:
        yield from pieces

    return b"".join(client.text_to_speech.convert_realtime(
        VOICE, text=text(), model_id="eleven_flash_v2_5", output_format="ulaw_8000",
        voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.75),
    ))


# On a normal close the SDK reads ConnectionClosed.code, deprecated since websockets 13.
@pytest.mark.filterwarnings("ignore:ConnectionClosed.code is deprecated:DeprecationWarning")
async def test_sdk_realtime_client_speaks_over_stream_input(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_path, key_path = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    # The SDK's client verifies with the default trust store: make it trust our certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    async with ElevenLabsEmulator(api_key=KEY, ssl_context=server_tls) as emulator:
        client = ElevenLabs(api_key=KEY, base_url=emulator.http_base_url)
        pieces = ["Your appointment ", "is booked ", "for Tuesday ", "at ten."]
        audio = await asyncio.to_thread(realtime, client, pieces)
        assert emulator.counters.connections == 1 and emulator.counters.contexts_closed == 1
        # The SDK opens with " " and its text chunker ends the last piece with a space.
        assert emulator.counters.chars_received == len(" " + "".join(pieces) + " ")
        expected = await emulator.speak(TEXT)
    # One generation of the whole sentence (under the SDK's 50-character schedule until the
    # closing "" flushes it), streamed back in 250 ms messages the SDK decodes and joins.
    assert same_speech(audio, expected)


# ---- multi-stream-input: the SDK's message models over a plain WebSocket ----------------------


def sdk_frame(message: BaseModel) -> str:
    return orjson.dumps(message.dict()).decode()  # the SDK's own serialisation of its models


async def test_multi_stream_input_frames_parse_as_the_sdks_models(
    eleven: ElevenLabsEmulator,
) -> None:
    url = (f"{eleven.base_url}/v1/text-to-speech/{VOICE}/multi-stream-input"
           "?model_id=eleven_flash_v2_5&output_format=ulaw_8000")
    texts = {"c1": "Tuesday at ten works.", "c2": "Shall I send a text?"}
    raw: list[str] = []
    async with connect(url, additional_headers={"xi-api-key": KEY}) as ws:
        for context_id, text in texts.items():
            await ws.send(sdk_frame(InitializeConnectionMulti(
                context_id=context_id,
                voice_settings=RealtimeVoiceSettings(stability=0.5, similarity_boost=0.75),
                generation_config=GenerationConfig(chunk_length_schedule=[120, 160, 250, 290]),
            )))
            await ws.send(sdk_frame(SendTextMulti(text=text + " ", context_id=context_id,
                                                  flush=True)))
            await ws.send(sdk_frame(CloseContext(context_id=context_id, close_context=True)))
        finals = 0
        while finals < len(texts):
            frame = await ws.recv()
            assert isinstance(frame, str)
            raw.append(frame)
            finals += orjson.loads(frame).get("isFinal") is True
        await ws.send(sdk_frame(CloseSocket(close_socket=True)))
        await ws.wait_closed()
    assert ws.close_code == 1000

    audio: dict[str, bytearray] = {context_id: bytearray() for context_id in texts}
    spoken: dict[str, str] = {context_id: "" for context_id in texts}
    ended: list[str] = []
    for frame in raw:
        if "audio" in orjson.loads(frame):
            chunk = AudioOutputMulti.model_validate_json(frame, strict=True)
            assert chunk.context_id in texts and chunk.context_id not in ended
            alignment = chunk.normalized_alignment
            assert alignment is not None and alignment.chars is not None
            assert alignment.char_start_times_ms is not None
            assert alignment.char_durations_ms is not None  # the SDK's spelling is read
            assert len(alignment.chars) == len(alignment.char_start_times_ms) == len(
                alignment.char_durations_ms)
            pcm = base64.b64decode(chunk.audio)
            assert all(0 <= start < len(pcm) // BYTES_PER_MS + 1
                       for start in alignment.char_start_times_ms)  # relative to the chunk
            audio[chunk.context_id] += pcm
            spoken[chunk.context_id] += "".join(alignment.chars)
        else:
            final = FinalOutputMulti.model_validate_json(frame, strict=True)
            assert final.is_final and final.context_id in texts
            ended.append(final.context_id)
    assert sorted(ended) == sorted(texts)
    for context_id, text in texts.items():
        assert spoken[context_id] == text + " "
        assert same_speech(bytes(audio[context_id]), await eleven.speak(text))
