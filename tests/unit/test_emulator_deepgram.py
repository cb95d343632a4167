"""The Deepgram emulator against the official asyncapi spec (../shared/specs/deepgram/), through a
raw WebSocket client: every server message validates against the spec's message schemas, the
handshake checks the spec's query table, and the documented closes (NET-0001, DATA-0000)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import pytest_asyncio
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from slotline.providers.emulators.deepgram import QUERY_PARAMETERS, DeepgramEmulator, Faults
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import TEXTS, caller_frames

pytestmark = pytest.mark.asyncio(loop_scope="module")

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "specs" / "deepgram" / "asyncapi.yml"
KEY = "emulator-test-key"
AUTH = {"Authorization": f"Token {KEY}"}
QUERY = ("model=nova-3&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true"
         "&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true&punctuate=true")


@functools.cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(SPEC_PATH.read_text(), Loader=yaml.CSafeLoader)
    return loaded


@functools.cache
def server_message_validator() -> jsonschema.Draft7Validator:
    """``oneOf`` the payloads of /v1/listen's ``publish`` (server) messages, refs resolved in
    the spec. Message keys contain '/', so those refs are looked up by name, not as pointers."""
    messages = spec()["components"]["messages"]
    prefix = "#/components/messages/"
    payloads = [
        {"$ref": "urn:deepgram" + messages[ref["$ref"].removeprefix(prefix)]["payload"]["$ref"]}
        for ref in spec()["channels"]["/v1/listen"]["publish"]["message"]["oneOf"]
    ]
    registry: Registry[Any] = Registry().with_resource(
        "urn:deepgram", Resource.from_contents(spec(), default_specification=DRAFT7)
    )
    return jsonschema.Draft7Validator(
        {"oneOf": payloads}, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def ulaw(stem: str, *, lead_ms: int = 400, tail_ms: int = 800) -> bytes:
    return b"".join(chunk.ulaw for chunk in caller_frames(stem, lead_ms=lead_ms, tail_ms=tail_ms))


async def send_audio(ws: ClientConnection, audio: bytes, frame_bytes: int = 800) -> None:
    for start in range(0, len(audio), frame_bytes):
        await ws.send(audio[start : start + frame_bytes])


async def receive_all(ws: ClientConnection) -> list[dict[str, Any]]:
    return [orjson.loads(message) async for message in ws]


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


async def test_query_table_is_the_specs() -> None:
    properties = spec()["channels"]["/v1/listen"]["bindings"]["ws"]["query"]["properties"]
    schemas = spec()["components"]["schemas"]
    assert set(QUERY_PARAMETERS) == set(properties)
    for name, prop in properties.items():
        enum = schemas[prop["$ref"].removeprefix("#/components/schemas/")].get("enum")
        assert QUERY_PARAMETERS[name] == (None if enum is None else tuple(enum)), name


async def test_a_call_produces_spec_valid_messages_in_deepgrams_order(
    dg: DeepgramEmulator,
) -> None:
    async with connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        await send_audio(ws, ulaw("name_john", tail_ms=1500))  # endpoint, then UtteranceEnd
        await send_audio(ws, ulaw("book", lead_ms=0, tail_ms=100))
        await ws.send('{"type": "KeepAlive"}')
        await ws.send('{"type": "Finalize"}')
        await ws.send('{"type": "Finalize"}')  # nothing pending: an empty from_finalize result
        await ws.send('{"type": "CloseStream"}')
        messages = await receive_all(ws)
    assert ws.close_code == 1000
    assert dg.sent is not None and [orjson.loads(m) for m in dg.sent] == messages
    validator = server_message_validator()
    for message in messages:
        validator.validate(message)
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "SpeechStarted" and kinds[-1] == "Metadata"
    assert {"Results", "UtteranceEnd"} <= set(kinds)
    finals = [m for m in messages if m["type"] == "Results" and m["is_final"]]
    texts = [m["channel"]["alternatives"][0]["transcript"] for m in finals]
    assert texts == [TEXTS["name_john"], TEXTS["book"], ""]
    assert [(m["speech_final"], m["from_finalize"]) for m in finals] == [
        (True, False), (False, True), (False, True),
    ]
    for earlier, later in zip(finals, finals[1:], strict=False):  # contiguous spans
        assert later["start"] == pytest.approx(earlier["start"] + earlier["duration"])
    assert kinds.index("UtteranceEnd") > kinds.index("Results")
    assert any(m["type"] == "Results" and not m["is_final"] for m in messages)  # interims
    assert dg.stats.keepalives == 1 and dg.stats.finalizes == 2 and dg.stats.close_streams == 1


@pytest.mark.parametrize(
    ("path", "headers", "status", "err_code"),
    [
        (f"/v1/listen?{QUERY}", {}, 401, "INVALID_AUTH"),
        (f"/v1/listen?{QUERY}", {"Authorization": "Token nope"}, 401, "INVALID_AUTH"),
        (f"/v1/listen?{QUERY}", {"Authorization": KEY}, 401, "INVALID_AUTH"),
        (f"/v1/listen?{QUERY}&colour=blue", AUTH, 400, "Bad Request"),
        (f"/v1/listen?{QUERY}&diarize=maybe", AUTH, 400, "Bad Request"),
        ("/v1/listen?model=nova-9&encoding=mulaw&sample_rate=8000", AUTH, 400, "Bad Request"),
        (f"/v1/listen?{QUERY}&model=nova-2", AUTH, 400, "Bad Request"),  # repeated
        ("/v1/listen?encoding=linear16&sample_rate=16000", AUTH, 400, "Bad Request"),
        (f"/v1/listen?{QUERY}".replace("endpointing=300", "endpointing=soon"), AUTH, 400,
         "Bad Request"),
        (f"/v2/listen?{QUERY}", AUTH, 404, "NOT_FOUND"),
    ],
)
async def test_failed_upgrades_answer_like_deepgram(
    dg: DeepgramEmulator, path: str, headers: dict[str, str], status: int, err_code: str
) -> None:
    with pytest.raises(InvalidStatus) as raised:
        await connect(f"{dg.url}{path}", additional_headers=headers)
    response = raised.value.response
    body = orjson.loads(response.body)
    assert response.status_code == status and body["err_code"] == err_code
    assert response.headers["dg-error"] == body["err_msg"] and response.headers["dg-request-id"]
    assert response.headers["Content-Type"] == "application/json"
    assert dg.stats.rejected == {status: 1} and dg.stats.connections == 0


async def test_repeatable_parameters_may_repeat(dg: DeepgramEmulator) -> None:
    query = f"{QUERY}&keyterm=Slotline&keyterm=appointment&tag=a&tag=b"
    async with connect(f"{dg.url}/v1/listen?{query}", additional_headers=AUTH) as ws:
        await ws.send('{"type": "CloseStream"}')
        messages = await receive_all(ws)
    assert [m["type"] for m in messages] == ["Metadata"]


async def test_silence_closes_with_net_0001(dg: DeepgramEmulator) -> None:
    async with connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        await send_audio(ws, b"\xff" * 1600)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011 and (ws.close_reason or "").startswith("NET-0001")
    assert dg.stats.closes == {1011: 1}


async def test_keepalive_holds_the_socket_past_the_idle_timeout(dg: DeepgramEmulator) -> None:
    async with connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        for _ in range(8):  # 0.8 s, twice the idle timeout
            await ws.send('{"type": "KeepAlive"}')
            await asyncio.sleep(0.1)
        await ws.send(b"")  # the legacy close: an empty binary frame
        messages = await receive_all(ws)
    assert [m["type"] for m in messages] == ["Metadata"] and ws.close_code == 1000
    assert dg.stats.keepalives == 8


@pytest.mark.parametrize("text", ["hello", '{"type": "Flush"}', "[]"])
async def test_malformed_client_text_closes_with_data_0000(dg: DeepgramEmulator, text: str) -> None:
    async with connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        await ws.send(text)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008 and (ws.close_reason or "").startswith("DATA-0000")


async def test_finalize_delay_is_applied(recognizer: LocalSpeechToText) -> None:
    async with DeepgramEmulator(
        api_key=KEY, recognizer=recognizer, finalize_delay_ms=200.0
    ) as dg, connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        await send_audio(ws, b"\xff" * 800)
        sent_at = time.perf_counter()
        await ws.send('{"type": "Finalize"}')
        result = orjson.loads(await ws.recv())
        waited_s = time.perf_counter() - sent_at
    assert result["from_finalize"] and result["channel"]["alternatives"][0]["transcript"] == ""
    assert waited_s >= 0.2  # a floor the emulator sleeps for, not a latency budget
    cloud = DeepgramEmulator.cloud(recognizer=recognizer, jitter_ms=0.0)
    assert (cloud.finalize_delay_s, cloud.jitter_s) == (0.15, 0.0)


async def test_drop_fault_aborts_without_a_close_frame(recognizer: LocalSpeechToText) -> None:
    # the default idle timeout: the first result (a decode) may take longer than the
    # module's 0.4 s on a loaded machine, and an idle close is not the fault under test
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer) as dg:
        dg.inject(Faults(drop_after_results=1))
        async with connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
            await send_audio(ws, ulaw("name_john", tail_ms=100))
            await ws.send('{"type": "Finalize"}')
            with pytest.raises(ConnectionClosedError):
                while True:
                    await ws.recv()
    assert ws.close_code == 1006  # abnormal: no close frame came
    assert dg.stats.faults_fired == 1 and dg.stats.final_results + dg.stats.interim_results == 1


async def test_malformed_fault_sends_one_broken_frame(dg: DeepgramEmulator) -> None:
    dg.inject(Faults(malformed_after_results=1))
    async with connect(f"{dg.url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        await send_audio(ws, ulaw("yes", tail_ms=100))
        await ws.send('{"type": "Finalize"}')
        await ws.send('{"type": "CloseStream"}')
        frames = [message async for message in ws]
    broken = [frame for frame in frames if isinstance(frame, str) and not frame.endswith("}")]
    assert len(broken) == 1 and frames.index(broken[0]) == 2  # SpeechStarted, Results, broken
    assert dg.sent is not None and broken[0] not in dg.sent
