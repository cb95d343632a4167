"""Behind ngrok / Caddy / a load balancer (TLS ended in front, ``X-Forwarded-Proto: https``,
``Host: abc.ngrok.app``) with no ``public_url``: the TwiML streams to ``wss://`` on the public
host and Twilio's signature is checked against the public ``https://`` URL — only when the peer
is a trusted proxy. A real server on 127.0.0.1:0; signatures computed with Twilio's own library.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import Server, running_server

AUTH_TOKEN = "proxy-s3cret"
PUBLIC = "abc.ngrok.app"
FORM = {"CallSid": "CA" + "1" * 32, "From": "+15551230000", "To": "+15559870000",
        "Direction": "inbound"}
NGROK = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "Host": PUBLIC}


async def _post(server: Server, headers: Mapping[str, str],
                form: Mapping[str, str] = FORM) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, \
            http.post(server.url + "/twilio/voice", data=dict(form), headers=headers) as response:
        return response.status, await response.text()


def _stream_url(twiml: str) -> str:
    match = re.search(r'<Stream url="([^"]+)"', twiml)
    assert match, twiml
    return match.group(1)


def _signed(url: str) -> dict[str, str]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, dict(FORM))
    return {**NGROK, "X-Twilio-Signature": signature}


@pytest.fixture
async def unsigned() -> AsyncIterator[Server]:
    runner, srv = await running_server()
    try:
        yield srv
    finally:
        await runner.cleanup()


@pytest.fixture
async def signed() -> AsyncIterator[Server]:
    runner, srv = await running_server(secret_env={"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    try:
        yield srv
    finally:
        await runner.cleanup()


async def test_forwarded_https_from_loopback_streams_to_wss_on_the_public_host(
    unsigned: Server,
) -> None:
    status, twiml = await _post(unsigned, NGROK)
    assert status == 200
    assert _stream_url(twiml) == f"wss://{PUBLIC}/twilio/media"


async def test_rfc7239_forwarded_header_too(unsigned: Server) -> None:
    forwarded = f'for=203.0.113.7;proto=https;host="{PUBLIC}"'
    status, twiml = await _post(unsigned, {"Forwarded": forwarded})
    assert status == 200
    assert _stream_url(twiml) == f"wss://{PUBLIC}/twilio/media"


async def test_direct_request_still_gets_plain_ws(unsigned: Server) -> None:
    status, twiml = await _post(unsigned, {})
    host = unsigned.url.removeprefix("http://")
    assert status == 200 and _stream_url(twiml) == f"ws://{host}/twilio/media"


async def test_signature_over_the_public_https_url_is_accepted(signed: Server) -> None:
    status, twiml = await _post(signed, _signed(f"https://{PUBLIC}/twilio/voice"))
    assert status == 200, twiml
    assert _stream_url(twiml) == f"wss://{PUBLIC}/twilio/media"


async def test_signature_over_the_plain_http_url_is_refused(signed: Server) -> None:
    status, _ = await _post(signed, _signed(f"http://{PUBLIC}/twilio/voice"))
    assert status == 403


async def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    env = {"SLOTLINE_SERVER__TRUSTED_PROXIES": "10.0.0.0/8"}  # 127.0.0.1 is not in it
    runner, srv = await running_server(env, {"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    try:
        status, _ = await _post(srv, _signed(f"https://{PUBLIC}/twilio/voice"))
        assert status == 403  # the https URL is not the one this request came to
        # what the socket saw: plain http, the Host header as sent
        status, twiml = await _post(srv, _signed(f"http://{PUBLIC}/twilio/voice"))
        assert status == 200, twiml
        assert _stream_url(twiml) == f"ws://{PUBLIC}/twilio/media"
    finally:
        await runner.cleanup()
