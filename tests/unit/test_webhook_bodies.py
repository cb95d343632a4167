"""Bodies that are not UTF-8 on every ``/twilio/*`` webhook and every ``/api/*`` body parser:
a clear 400 and no traceback, with or without a Twilio auth token (issue 17, defect 5).

Real server on 127.0.0.1:0; the traceback check reads aiohttp's own error log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from slotline.providers.telephony.twilio_webhook import BadForm, parse_form, sign
from tests.e2e.conftest import Server, running_server

FORM = "application/x-www-form-urlencoded"
TWILIO_POSTS = ("/twilio/voice", "/twilio/status", "/twilio/amd", "/twilio/stream-status")
BAD_FORMS = (
    (b"CallSid=CA1&From=\xff\xfe", FORM),  # raw bytes that are not UTF-8
    (b"CallSid=\xc3\x28", FORM),  # a broken two-byte sequence
    (b"CallSid=%ff%fe", FORM),  # percent-encoded bytes that are not UTF-8
    (b"CallSid=CA1", FORM + "; charset=no-such-charset"),  # aiohttp raised LookupError
)


@pytest.fixture(params=["unsigned", "signed"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    secrets = {"TWILIO_AUTH_TOKEN": "s3cret"} if request.param == "signed" else {}
    runner, srv = await running_server(secret_env=secrets)
    try:
        yield srv
    finally:
        await runner.cleanup()


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info is not None]


@pytest.mark.parametrize("path", TWILIO_POSTS)
async def test_a_webhook_body_that_is_not_utf8_is_a_400_without_a_traceback(
    server: Server, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        for body, content_type in BAD_FORMS:
            url = server.url + path
            # signed as a forger would sign it: the body must be refused before anything else
            headers = {"Content-Type": content_type,
                       "X-Twilio-Signature": sign("s3cret", url, {})}
            async with http.post(url, data=body, headers=headers) as response:
                text = await response.text()
                if content_type == FORM:
                    assert response.status == 400, (body, text)
                    assert "not UTF-8" in text
                else:  # the charset parameter is ignored: Twilio's bodies are UTF-8
                    assert response.status in (204, 200, 403), (body, text)
    assert _tracebacks(caplog) == []


async def test_a_good_signed_form_is_still_accepted_after_a_bad_one() -> None:
    runner, server = await running_server(secret_env={"TWILIO_AUTH_TOKEN": "s3cret"})
    try:
        url = f"{server.url}/twilio/voice"
        form = {"CallSid": "CA" + "1" * 32, "From": "+15005550006", "Body": "café"}
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": FORM}
            async with http.post(url, data=b"From=\xff", headers=headers) as response:
                assert response.status == 400
            signed = {"X-Twilio-Signature": sign("s3cret", url, form)}
            async with http.post(url, data=form, headers=signed) as response:
                assert response.status == 200
                assert "<Stream" in await response.text()
    finally:
        await runner.cleanup()


API_BODIES = (
    ("/api/calls", b'{"to": "\xff\xfe", "flow": "demo_booking"}', "application/json"),
    ("/api/calls", b"\xef\xbb\xbf\xff{", "application/json"),
    ("/api/campaigns", b'{"flow": "demo_booking", "contacts": [{"phone": "\xff"}]}',
     "application/json"),
    ("/api/campaigns?flow=demo_booking", b"phone,name\n+15005550006,\xff\xfe\n", "text/csv"),
    ("/api/campaigns?flow=demo_booking", b"\xff\xfep\x00h\x00", "application/octet-stream"),
    ("/api/dnc", b"phone\n\xc3\x28\n", "text/csv"),
    ("/api/dnc", b'{"phones": ["\xff"]}', "application/json"),
    ("/api/dnc", b"phones=\xff", FORM),
)


async def test_api_bodies_that_are_not_utf8_are_a_400_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    runner, server = await running_server()  # loopback, no API token: the API is open
    try:
        async with aiohttp.ClientSession() as http:
            for path, body, content_type in API_BODIES:
                async with http.post(server.url + path, data=body,
                                     headers={"Content-Type": content_type}) as response:
                    assert response.status == 400, (path, body, await response.text())
                    assert "error" in await response.json()
    finally:
        await runner.cleanup()
    assert _tracebacks(caplog) == []


def test_parse_form_is_strict_utf8_and_keeps_blank_values() -> None:
    assert parse_form(b"A=1&B=&C=caf%C3%A9+au+lait") == {"A": "1", "B": "", "C": "café au lait"}
    assert parse_form(b"A=1&A=2") == {"A": "2"}
    for bad in (b"A=\xff", b"A=%ff", b"%c3%28=1"):
        with pytest.raises(BadForm):
            parse_form(bad)
