"""Media streams bound to calls we answered (issue 17, defect 7): with a Twilio auth token set,
a ``start`` must carry the single-use, expiring token the signed ``/twilio/voice`` TwiML gave for
that ``callSid``. Replayed, another call's, expired, forged and missing tokens are refused over a
real socket; a valid one runs the call. Without an auth token nothing is checked."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

from slotline.agent.dialer.twiml import RESERVED
from slotline.agent.server.stream_token import PARAMETER, StreamTokens, key_from_auth_token
from slotline.providers.telephony import twilio_media as tw
from slotline.providers.telephony.twilio_webhook import sign
from tests.e2e.conftest import Server, running_server

AUTH_TOKEN = "s3cret"
ACCOUNT_SID = "AC" + "2" * 32
CALL_A = "CA" + "a" * 32
CALL_B = "CA" + "b" * 32


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_token_admits_its_call_once_and_nothing_else() -> None:
    clock = Clock()
    tokens = StreamTokens(key_from_auth_token(AUTH_TOKEN), lifetime_s=60, now_s=clock)
    token = tokens.issue(CALL_A)
    assert tokens.admit(CALL_B, token) == "forged"  # another call's token
    assert tokens.admit(CALL_A, token) is None
    assert tokens.admit(CALL_A, token) == "replayed"
    assert tokens.admit(CALL_A, None) == "missing"
    assert tokens.admit(CALL_A, "") == "missing"
    assert tokens.admit(CALL_A, "x.y") == "malformed"
    assert tokens.admit(CALL_A, "x" * 5000) == "malformed"
    expiry, nonce, mac = tokens.issue(CALL_A).split(".")
    assert tokens.admit(CALL_A, f"{int(expiry) + 3600}.{nonce}.{mac}") == "forged"  # extended
    other_account = StreamTokens(key_from_auth_token("another"), now_s=clock)
    assert tokens.admit(CALL_A, other_account.issue(CALL_A)) == "forged"
    late = tokens.issue(CALL_A)
    clock.now_s += 62
    assert tokens.admit(CALL_A, late) == "expired"


def test_another_process_with_the_same_auth_token_checks_the_token() -> None:
    """Workers share nothing but the auth token; each one admits what another issued."""
    issued = StreamTokens.for_auth_token(AUTH_TOKEN).issue(CALL_A)
    assert StreamTokens.for_auth_token(AUTH_TOKEN).admit(CALL_A, issued) is None


def test_a_contact_variable_cannot_set_the_token() -> None:
    assert PARAMETER in RESERVED


# ---- over a real server -------------------------------------------------------------------------


@pytest.fixture
async def signed() -> AsyncIterator[Server]:
    runner, srv = await running_server(secret_env={"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    try:
        yield srv
    finally:
        await runner.cleanup()


async def _twiml_parameters(http: aiohttp.ClientSession, server: Server,
                            call_sid: str) -> dict[str, str]:
    """What Twilio does when a call comes in: the signed voice webhook, then read ``<Stream>``."""
    url = f"{server.url}/twilio/voice"
    form = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "From": "+15005550006",
            "To": "+15005550001", "Direction": "inbound"}
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)}
    async with http.post(url, data=form, headers=headers) as response:
        assert response.status == 200
        stream = ET.fromstring(await response.text()).find("./Connect/Stream")
    assert stream is not None
    return {p.attrib["name"]: p.attrib["value"] for p in stream.iter("Parameter")}


async def _open_stream(http: aiohttp.ClientSession, server: Server, call_sid: str,
                       parameters: Mapping[str, str]) -> tuple[bool, int | None]:
    """Connect as Twilio (signed upgrade), send connected + start; (call ran?, close code)."""
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, server.media_url, {})}
    async with http.ws_connect(server.media_url, headers=headers) as ws:
        await ws.send_str(tw.encode_connected())
        await ws.send_str(tw.encode_start("MZ" + call_sid[2:], ACCOUNT_SID, call_sid,
                                          custom_parameters=parameters))
        msg = await ws.receive(timeout=10)
        if msg.type is WSMsgType.TEXT:  # the greeting: the call runs
            assert isinstance(tw.parse_outbound(msg.data), tw.OutboundMedia)
            await ws.send_str(tw.encode_stop("MZ" + call_sid[2:], 3, ACCOUNT_SID, call_sid))
            return True, None
        return False, ws.close_code


async def test_the_token_from_the_twiml_runs_the_call_and_only_once(signed: Server) -> None:
    async with aiohttp.ClientSession() as http:
        parameters = await _twiml_parameters(http, signed, CALL_A)
        assert PARAMETER in parameters
        assert await _open_stream(http, signed, CALL_A, parameters) == (True, None)
        record = signed.deps.call_log.get(CALL_A)
        assert record is not None
        replayed = await _open_stream(http, signed, CALL_A, parameters)
        assert replayed == (False, WSCloseCode.POLICY_VIOLATION)


async def test_a_token_for_another_call_is_refused(signed: Server) -> None:
    async with aiohttp.ClientSession() as http:
        parameters = await _twiml_parameters(http, signed, CALL_A)
        ran, code = await _open_stream(http, signed, CALL_B, parameters)
    assert (ran, code) == (False, WSCloseCode.POLICY_VIOLATION)
    assert signed.deps.call_log.get(CALL_B) is None  # refused before any call existed


async def test_an_expired_token_is_refused(signed: Server) -> None:
    # signed with the server's own key, but issued two minutes ago
    past = StreamTokens.for_auth_token(AUTH_TOKEN)
    old = StreamTokens(key_from_auth_token(AUTH_TOKEN), now_s=lambda: time.time() - 120)
    assert past.admit(CALL_A, old.issue(CALL_A)) == "expired"
    async with aiohttp.ClientSession() as http:
        parameters = {"flow": "demo_booking", PARAMETER: old.issue(CALL_A)}
        assert await _open_stream(http, signed, CALL_A, parameters) == (
            False, WSCloseCode.POLICY_VIOLATION)


async def test_a_start_without_a_token_is_refused_and_counted(signed: Server) -> None:
    async with aiohttp.ClientSession() as http:
        for parameters in ({"flow": "demo_booking"}, {PARAMETER: "1.2.3"}):
            assert await _open_stream(http, signed, CALL_A, parameters) == (
                False, WSCloseCode.POLICY_VIOLATION)
    assert signed.deps.metrics.protocol_errors.values["stream_refused"] == 2
    assert signed.deps.call_log.get(CALL_A) is None


async def test_without_an_auth_token_streams_are_not_checked() -> None:
    runner, server = await running_server()
    try:
        async with aiohttp.ClientSession() as http:
            assert await _open_stream(http, server, CALL_A, {}) == (True, None)
    finally:
        await runner.cleanup()
