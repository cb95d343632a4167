"""Bad input on the media socket and webhooks: a typed, logged error, and the server serves on."""

from __future__ import annotations

import asyncio
import base64
import contextlib

import aiohttp
import orjson
import pytest

from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav
from slotline.providers.telephony import twilio_media as tw
from slotline.providers.telephony.twilio_webhook import sign
from tests.e2e.conftest import Server, call_tasks, running_server

STREAM_SID = "MZ" + "0" * 32
CALL_SID = "CA" + "1" * 32
ACCOUNT_SID = "AC" + "2" * 32


def _start() -> str:
    return tw.encode_start(
        stream_sid=STREAM_SID, sequence_number=1, account_sid=ACCOUNT_SID, call_sid=CALL_SID,
        custom_parameters={},
    )


def _media(payload: str, seq: int = 2) -> str:
    return orjson.dumps({
        "event": "media", "sequenceNumber": str(seq), "streamSid": STREAM_SID,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": payload},
    }).decode()


async def _good_call(server: Server) -> list[str]:
    report = await run_caller(server.media_url, [caller_wav(u.stem) for u in DEMO_SCRIPT])
    record = server.deps.call_log.get(report.call_sid)
    assert record is not None
    return [t.text for t in record.turns if t.role == "caller"]


async def test_malformed_messages_are_dropped_with_typed_errors(server: Server) -> None:
    good_call = asyncio.create_task(_good_call(server))  # another call goes on meanwhile
    async with aiohttp.ClientSession() as http, http.ws_connect(server.media_url) as ws:
        await ws.send_str(_media(base64.b64encode(b"\xff" * 160).decode()))  # before start
        await ws.send_str("{not json")
        await ws.send_str('{"event": "bogus"}')
        await ws.send_bytes(b"\x00\x01binary")
        await ws.send_str(tw.encode_connected())
        await ws.send_str(_start())
        await ws.send_str(_media("!!!not base64!!!", seq=3))
        await ws.send_str(_media(base64.b64encode(b"\xff" * 100).decode(), seq=4))
        await ws.send_str(tw.encode_inbound_media(STREAM_SID, 5, 2, 40, b"\xff" * 160))
        await ws.send_str(tw.encode_stop(STREAM_SID, 6, ACCOUNT_SID, CALL_SID))
        await ws.receive()  # the server closes after stop
    errors = server.deps.metrics.protocol_errors.values
    for code in ("before_start", "invalid_json", "unknown_event", "binary_frame",
                 "bad_base64", "bad_payload_size"):
        assert errors[code] >= 1, code
    record = server.deps.call_log.get(CALL_SID)
    assert record is not None and record.status == "completed"
    logged = " ".join(e["message"] for e in record.errors)
    assert "bad_base64" in logged and "bad_payload_size" in logged
    assert await good_call == [u.text for u in DEMO_SCRIPT]
    assert call_tasks() == []


async def test_ten_megabyte_message_closes_that_socket_only(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(server.media_url) as ws:
            await ws.send_str(tw.encode_connected())
            # the server may close before the whole 10 MB is written
            with contextlib.suppress(ConnectionError):
                await ws.send_str("x" * (10 * 1024 * 1024))
            msg = await ws.receive()
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR)
        assert server.deps.metrics.protocol_errors.values["message_too_big"] == 1
        async with http.get(f"{server.url}/healthz") as response:
            assert response.status == 200
    assert await _good_call(server) == [u.text for u in DEMO_SCRIPT]


async def test_socket_dropped_mid_reply_ends_the_call_cleanly(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.media_url)
        await ws.send_str(tw.encode_connected())
        await ws.send_str(_start())
        msg = await ws.receive()  # the greeting starts streaming...
        assert tw.parse_outbound(msg.data).__class__ is tw.OutboundMedia
        await ws.close()  # ...and the caller is gone
    record = server.deps.call_log.get(CALL_SID)
    assert record is not None
    for _ in range(100):
        if record.status != "in-progress":
            break
        await asyncio.sleep(0.02)
    assert record.status == "completed"
    assert any("without a stop" in e["message"] for e in record.errors)
    assert server.deps.metrics.active_calls == 0
    await asyncio.sleep(0)
    assert call_tasks() == []


@pytest.fixture
async def signed_server() -> object:
    runner, srv = await running_server(secret_env={"TWILIO_AUTH_TOKEN": "s3cret"})
    try:
        yield srv
    finally:
        await runner.cleanup()


async def test_forged_signatures_get_403(signed_server: Server) -> None:
    server = signed_server
    form = {"CallSid": CALL_SID, "From": "+15005550006"}
    voice_url = f"{server.url}/twilio/voice"
    async with aiohttp.ClientSession() as http:
        async with http.post(voice_url, data=form) as response:
            assert response.status == 403  # unsigned
        forged = {"X-Twilio-Signature": sign("wrong-token", voice_url, form)}
        async with http.post(voice_url, data=form, headers=forged) as response:
            assert response.status == 403
        good = {"X-Twilio-Signature": sign("s3cret", voice_url, form)}
        async with http.post(voice_url, data=form, headers=good) as response:
            assert response.status == 200
            assert "<Stream" in await response.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.media_url)
        assert refused.value.status == 403
        signed = {"X-Twilio-Signature": sign("s3cret", server.media_url, {})}
        async with http.ws_connect(server.media_url, headers=signed) as ws:
            await ws.send_str(tw.encode_connected())
            assert not ws.closed
