"""The official ``deepgram-sdk`` (v7) as the client of our Deepgram emulator, over 127.0.0.1.

Proves the emulator speaks what the SDK expects on ``/v1/listen``: the SDK builds the handshake
(query, ``Authorization: Token``), sends audio and its own ``KeepAlive``/``Finalize``/
``CloseStream`` models, and parses every server frame into its typed messages. The SDK parses
with unchecked construction (a missing field would pass silently), so each frame the emulator
sent is also validated strictly against the SDK's pydantic model of its type.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1Configure,
    ListenV1ConfigureFailure,
    ListenV1ConfigureSuccess,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from pydantic import BaseModel

from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import TEXTS, caller_frames

# The SDK's async socket rides on websockets' legacy client, deprecated since websockets 14.
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:websockets.exceptions.InvalidStatusCode:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:websockets.client.connect is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:websockets.client.WebSocketClientProtocol:DeprecationWarning"),
]

KEY = "contract-test-key"
SDK_MODELS: dict[str, type[BaseModel]] = {
    "Results": ListenV1Results, "SpeechStarted": ListenV1SpeechStarted,
    "UtteranceEnd": ListenV1UtteranceEnd, "Metadata": ListenV1Metadata,
}
# What our adapter asks for (providers/stt/deepgram_wire.ListenOptions), spelled as SDK options.
OPTIONS: dict[str, object] = {
    "model": "nova-3", "encoding": "mulaw", "sample_rate": 8000, "channels": 1,
    "interim_results": True, "endpointing": 300, "utterance_end_ms": 1000, "vad_events": True,
    "smart_format": True, "punctuate": True,
}


def sdk_client(url: str, key: str = KEY) -> AsyncDeepgramClient:
    """The SDK pointed at the emulator: its environment's ``production`` is the WebSocket root."""
    environment = DeepgramClientEnvironment(
        base=url.replace("ws://", "http://"), production=url, agent=url,
        agent_rest=url.replace("ws://", "http://"),
    )
    return AsyncDeepgramClient(api_key=key, environment=environment)


def ulaw_frames(stem: str, *, lead_ms: int = 400, tail_ms: int = 800) -> list[bytes]:
    """A caller recording as 20 ms mu-law frames (160 bytes), as Twilio delivers them."""
    return [chunk.ulaw for chunk in caller_frames(stem, lead_ms=lead_ms, tail_ms=tail_ms)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recognizer() -> AsyncIterator[LocalSpeechToText]:
    async with LocalSpeechToText() as provider:
        yield provider


@pytest_asyncio.fixture(loop_scope="module")
async def dg(recognizer: LocalSpeechToText) -> AsyncIterator[DeepgramEmulator]:
    async with DeepgramEmulator(
        api_key=KEY, recognizer=recognizer, record_messages=True, idle_timeout_s=0.4
    ) as emulator:
        yield emulator


async def test_a_call_through_the_sdk_gets_every_message_type_parsed(dg: DeepgramEmulator) -> None:
    received: list[object] = []
    async with sdk_client(dg.url).listen.v1.connect(**OPTIONS) as socket:
        for frame in ulaw_frames("name_john", tail_ms=1500):  # endpoint, then UtteranceEnd
            await socket.send_media(frame)
        for frame in ulaw_frames("book", lead_ms=0, tail_ms=100):
            await socket.send_media(frame)
        await socket.send_keep_alive()
        await socket.send_finalize()
        await socket.send_close_stream()
        async for message in socket:
            received.append(message)

    assert dg.sent is not None and len(received) == len(dg.sent)  # the SDK skipped nothing
    for raw, parsed in zip(dg.sent, received, strict=True):
        assert isinstance(parsed, BaseModel), raw
        model = SDK_MODELS[str(getattr(parsed, "type", ""))]
        assert type(parsed) is model, raw
        model.model_validate_json(raw, strict=True)  # every field the SDK declares, typed
    kinds = [type(message) for message in received]
    assert kinds[0] is ListenV1SpeechStarted and kinds[-1] is ListenV1Metadata
    assert ListenV1UtteranceEnd in kinds
    results = [m for m in received if isinstance(m, ListenV1Results)]
    assert any(not r.is_final for r in results)  # interims
    finals = [r for r in results if r.is_final]
    assert [f.channel.alternatives[0].transcript for f in finals] == [
        TEXTS["name_john"], TEXTS["book"],
    ]
    assert [(f.speech_final, f.from_finalize) for f in finals] == [(True, False), (False, True)]
    words = finals[0].channel.alternatives[0].words
    assert [w.word for w in words] == TEXTS["name_john"].split()
    assert all(finals[0].start <= w.start < w.end <= finals[0].start + finals[0].duration
               for w in words)
    metadata = received[-1]
    assert isinstance(metadata, ListenV1Metadata) and metadata.channels == 1
    assert metadata.duration == pytest.approx(sum(f.duration for f in finals), abs=0.05)
    assert dg.stats.keepalives == 1 and dg.stats.finalizes == 1 and dg.stats.close_streams == 1


async def test_sdk_keepalives_hold_the_socket_past_the_idle_timeout(dg: DeepgramEmulator) -> None:
    async with sdk_client(dg.url).listen.v1.connect(**OPTIONS) as socket:
        for _ in range(8):  # 0.8 s of no audio, twice the emulator's idle timeout
            await socket.send_keep_alive()
            await asyncio.sleep(0.1)
        await socket.send_close_stream()
        received = [message async for message in socket]
    assert [type(m) for m in received] == [ListenV1Metadata]
    assert dg.stats.keepalives == 8 and dg.stats.closes == {1000: 1}


async def test_finalize_with_nothing_pending_gives_an_empty_final(dg: DeepgramEmulator) -> None:
    async with sdk_client(dg.url).listen.v1.connect(**OPTIONS) as socket:
        await socket.send_media(b"\xff" * 160 * 10)  # 200 ms of silence
        await socket.send_finalize()
        result = await socket.recv()
        await socket.send_close_stream()
        rest = [message async for message in socket]
    assert isinstance(result, ListenV1Results)
    assert result.is_final and result.from_finalize and not result.speech_final
    assert result.channel.alternatives[0].transcript == ""
    assert [type(m) for m in rest] == [ListenV1Metadata]


@pytest.mark.parametrize(
    ("key", "options", "status"),
    [
        ("wrong-key", OPTIONS, 401),
        (KEY, {**OPTIONS, "encoding": "linear16", "sample_rate": 16000}, 400),
        (KEY, {**OPTIONS, "diarize_model": "v9"}, 400),
    ],
)
async def test_refused_handshakes_surface_as_the_sdks_api_error(
    dg: DeepgramEmulator, key: str, options: dict[str, object], status: int
) -> None:
    with pytest.raises(ApiError) as raised:
        async with sdk_client(dg.url, key).listen.v1.connect(**options):
            pass
    assert raised.value.status_code == status
    assert dg.stats.rejected == {status: 1} and dg.stats.connections == 0


async def test_the_sdks_mid_stream_configure_is_answered_in_its_own_types(
    dg: DeepgramEmulator,
) -> None:
    """deepgram-sdk 7.13+'s ``send_configure``: keyterms replaced on the open stream, one
    ``ConfigureSuccess`` per ``Configure``; a second sent before that answer is refused."""
    received: list[object] = []
    async with sdk_client(dg.url).listen.v1.connect(**OPTIONS) as socket:
        await socket.send_configure(ListenV1Configure(keyterms=["Kowalczyk", "estate planning"]))
        await socket.send_configure(ListenV1Configure(keyterms=["Priya"]))
        for frame in ulaw_frames("name_john", lead_ms=0, tail_ms=100):
            await socket.send_media(frame)
        await socket.send_close_stream()
        async for message in socket:
            received.append(message)
    configured = [m for m in received if "Configure" in str(getattr(m, "type", ""))]
    assert [type(m) for m in configured] == [ListenV1ConfigureSuccess, ListenV1ConfigureFailure]
    success, failure = configured
    assert isinstance(success, ListenV1ConfigureSuccess)
    assert isinstance(failure, ListenV1ConfigureFailure)
    assert success.keyterms == ["Kowalczyk", "estate planning"]
    assert failure.code == "CONFIGURE_ALREADY_PENDING"
    assert dg.sent is not None
    for raw in dg.sent:
        if '"Configure' in raw:
            model = ListenV1ConfigureFailure if "code" in raw else ListenV1ConfigureSuccess
            model.model_validate_json(raw, strict=True)

