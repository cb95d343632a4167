"""Twilio REST adapter against the Twilio emulator on 127.0.0.1, and the emulator itself
against the official API spec (../shared/specs/twilio/twilio_api_v2010.json): forms checked
against each operation's request schema, answers against the response schemas."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from slotline.providers.emulators.twilio import (
    CALL,
    CALLS,
    MESSAGE,
    MESSAGES,
    TwilioEmulator,
    response_validator,
)
from slotline.providers.errors import ConfigError, ProviderAuthError, ProviderError
from slotline.providers.http import RetryPolicy
from slotline.providers.notify.sms import TwilioSms
from slotline.providers.telephony.twilio_rest import TwilioApiError, TwilioRest

FROM = "+15005550006"
TO = "+14155550123"
TRANSFER = "<Response><Dial>+14155550100</Dial></Response>"
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, request_timeout_s=1.0)


@pytest.fixture
async def emu() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator() as emulator:
        yield emulator


@pytest.fixture
async def rest(emu: TwilioEmulator) -> AsyncIterator[TwilioRest]:
    async with TwilioRest(
        emu.account_sid, emu.auth_token, base_url=emu.base_url, retry=FAST
    ) as client:
        yield client


async def raw(
    emu: TwilioEmulator,
    method: str,
    path: str,
    form: list[tuple[str, str]] | None = None,
    *,
    token: str | None = None,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    """One request as any HTTP client would send it (no adapter involved)."""
    secret = f"{emu.account_sid}:{token if token is not None else emu.auth_token}"
    auth = {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}
    url = emu.base_url + path.replace("{AccountSid}", emu.account_sid)
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, data=form, headers=auth) as response:
            return response.status, await response.json(), response.headers


def call_path(sid: str) -> str:
    return CALL.replace("{Sid}", sid)


# ---- the adapter ------------------------------------------------------------------------------


async def test_an_sms_sent_through_twilio_sms_arrives_with_to_from_and_body(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sid = await TwilioSms(rest, FROM).send_sms(TO, "See you Tuesday at 3 pm.")

    assert sid.startswith("SM") and len(sid) == 34
    [message] = emu.messages
    assert (message.sid, message.to, message.from_, message.body) == (
        sid, TO, FROM, "See you Tuesday at 3 pm.",
    )
    status, body, _ = await raw(emu, "GET", MESSAGE.replace("{Sid}", sid))
    assert status == 200 and body["status"] == "sent" and body["to"] == TO


async def test_a_messaging_service_sid_is_sent_as_messaging_service_sid(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    service = "MG" + "ab" * 16
    await TwilioSms(rest, service).send_sms(TO, "Reminder")

    [message] = emu.messages
    assert message.messaging_service_sid == service and message.from_ is None


async def test_hangup_completes_the_call_and_is_safe_to_repeat(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sid = emu.register_call(to=FROM, from_=TO)

    await rest.hangup(sid)
    await rest.hangup(sid)  # what a retry after a lost answer does

    assert emu.call(sid).status == "completed"
    assert emu.call(sid).end_time is not None


async def test_redirect_gives_the_live_call_the_transfer_twiml(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sid = emu.register_call(to=FROM, from_=TO)

    await rest.redirect(sid, TRANSFER)

    call = emu.call(sid)
    assert call.twiml == TRANSFER and call.redirects == [TRANSFER]
    assert call.status == "in-progress"


async def test_redirecting_an_ended_call_is_twilio_error_21220(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sid = emu.register_call(to=FROM, from_=TO, status="completed")

    with pytest.raises(TwilioApiError) as caught:
        await rest.redirect(sid, TRANSFER)

    assert caught.value.code == 21220 and caught.value.status == 400
    assert not caught.value.retryable and emu.call(sid).redirects == []


async def test_too_long_twiml_is_refused_before_asking_twilio(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sid = emu.register_call(to=FROM, from_=TO)

    with pytest.raises(ProviderError, match="at most 4000"):
        await rest.redirect(sid, "<Response>" + "<Pause/>" * 600 + "</Response>")

    assert rest.requests == 0


async def test_create_call_places_a_queued_call_with_amd_and_callbacks(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sid = await rest.create_call(
        TO, FROM, "https://agent.example/twilio/voice",
        status_callback="https://agent.example/twilio/status",
        machine_detection="DetectMessageEnd",
        async_amd=True,
        async_amd_status_callback="https://agent.example/twilio/amd",
        status_callback_events=("initiated", "answered", "completed"),
        timeout_s=30,
    )

    call = emu.call(sid)
    assert sid.startswith("CA") and (call.status, call.to, call.from_) == ("queued", TO, FROM)
    assert call.url == "https://agent.example/twilio/voice"
    assert call.params["MachineDetection"] == "DetectMessageEnd"
    assert call.params["AsyncAmd"] == "true" and call.params["Timeout"] == 30
    assert call.params["StatusCallbackEvent"] == ["initiated", "answered", "completed"]


async def test_a_wrong_auth_token_is_provider_auth_error_asked_once(emu: TwilioEmulator) -> None:
    async with TwilioRest(emu.account_sid, "wrong", base_url=emu.base_url, retry=FAST) as rest:
        with pytest.raises(ProviderAuthError):
            await rest.hangup(emu.register_call(to=FROM, from_=TO))

    assert emu.counts[f"POST {CALL}"] == 1


async def test_a_missing_to_is_twilio_error_21604_not_retryable(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    with pytest.raises(TwilioApiError) as caught:
        await rest.send_sms("", FROM, "Hello")

    assert caught.value.code == 21604 and "21604" in str(caught.value)
    assert not caught.value.retryable and emu.messages == []


async def test_an_invalid_number_is_21211_and_kept_out_of_the_message(rest: TwilioRest) -> None:
    with pytest.raises(TwilioApiError) as caught:
        await rest.create_call("call-me-maybe", FROM, "https://agent.example/twilio/voice")

    assert caught.value.code == 21211 and "call-me-maybe" not in str(caught.value)


async def test_a_503_on_hangup_is_retried(emu: TwilioEmulator, rest: TwilioRest) -> None:
    sid = emu.register_call(to=FROM, from_=TO)
    emu.fail_next(503)

    await rest.hangup(sid)

    assert emu.counts[f"POST {CALL}"] == 2 and emu.call(sid).status == "completed"


async def test_a_503_on_create_is_not_retried(emu: TwilioEmulator, rest: TwilioRest) -> None:
    emu.fail_next(503)

    with pytest.raises(ProviderError) as caught:
        await rest.send_sms(TO, FROM, "Hello")

    assert caught.value.retryable and emu.counts[f"POST {MESSAGES}"] == 1


async def test_a_create_whose_answer_is_lost_is_not_sent_twice(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    emu.drop_next()  # Twilio accepted the message; the answer never arrives

    with pytest.raises(ProviderError) as caught:
        await rest.send_sms(TO, FROM, "Your booking is confirmed.")

    assert caught.value.retryable and len(emu.messages) == 1


# ---- the emulator against the spec ------------------------------------------------------------


async def test_an_undeclared_form_parameter_is_refused(emu: TwilioEmulator) -> None:
    form = [("To", TO), ("From", FROM), ("Body", "Hi"), ("Bogus", "1")]

    status, body, _ = await raw(emu, "POST", MESSAGES, form)

    assert status == 400 and body["code"] == 70002 and "Bogus" in body["message"]
    assert emu.messages == []


async def test_a_value_of_the_wrong_type_is_refused(emu: TwilioEmulator) -> None:
    form = [("To", TO), ("From", FROM), ("Url", "https://a.example/v"), ("Timeout", "soon")]

    status, body, _ = await raw(emu, "POST", CALLS, form)

    assert status == 400 and body["code"] == 70002 and "Timeout" in body["message"]


@pytest.mark.parametrize(
    ("path", "form", "code"),
    [
        (MESSAGES, [("To", TO), ("Body", "Hi")], 21603),
        (MESSAGES, [("To", TO), ("From", FROM)], 21602),
        (CALLS, [("From", FROM), ("Url", "https://a.example/v")], 21201),
        (CALLS, [("To", TO), ("Url", "https://a.example/v")], 21213),
        (CALLS, [("To", TO), ("From", FROM)], 21205),
    ],
)
async def test_missing_parameters_get_twilios_codes(
    emu: TwilioEmulator, path: str, form: list[tuple[str, str]], code: int
) -> None:
    status, body, _ = await raw(emu, "POST", path, form)

    assert status == 400
    assert body == {
        "code": code, "message": body["message"], "status": 400,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }


async def test_bad_credentials_get_401_with_code_20003(emu: TwilioEmulator) -> None:
    status, body, headers = await raw(emu, "POST", MESSAGES, [("To", TO)], token="nope")

    assert (status, body["code"], body["status"]) == (401, 20003, 401)
    assert headers["WWW-Authenticate"].startswith("Basic")


async def test_an_unknown_call_is_404_with_code_20404(emu: TwilioEmulator) -> None:
    status, body, _ = await raw(emu, "POST", call_path("CA" + "f" * 32), [("Status", "completed")])

    assert (status, body["code"]) == (404, 20404)


async def test_cancel_ends_a_queued_call_but_not_one_in_progress(emu: TwilioEmulator) -> None:
    queued = emu.register_call(to=TO, from_=FROM, status="queued")
    live = emu.register_call(to=TO, from_=FROM)

    for sid in (queued, live):
        status, _, _ = await raw(emu, "POST", call_path(sid), [("Status", "canceled")])
        assert status == 200

    assert (emu.call(queued).status, emu.call(live).status) == ("canceled", "in-progress")


async def test_answers_carry_exactly_the_spec_properties_with_rfc_2822_dates(
    emu: TwilioEmulator, rest: TwilioRest
) -> None:
    sms = await rest.send_sms(TO, FROM, "Hello")
    call = await rest.create_call(TO, FROM, "https://agent.example/twilio/voice")
    await rest.hangup(call)
    answers = {
        "api.v2010.account.message": await raw(emu, "GET", MESSAGE.replace("{Sid}", sms)),
        "api.v2010.account.call": await raw(emu, "GET", call_path(call)),
    }

    for schema, (status, body, _) in answers.items():
        validator = response_validator(schema)
        assert status == 200 and list(validator.iter_errors(body)) == []
        assert isinstance(validator.schema, Mapping)
        properties = validator.schema["$defs"]["t"]["properties"]
        assert set(body) == set(properties)
        for name, prop in properties.items():
            if prop.get("format") == "date-time-rfc-2822" and body[name] is not None:
                assert parsedate_to_datetime(body[name]).utcoffset() is not None
    assert answers["api.v2010.account.call"][1]["status"] == "completed"


def test_the_response_validator_rejects_a_misshapen_answer() -> None:
    validator = response_validator("api.v2010.account.call")

    assert list(validator.iter_errors({"status": "on-hold", "sid": "CA1"}))


async def test_a_missing_spec_fails_the_emulator_at_start(tmp_path: Path) -> None:
    emulator = TwilioEmulator(spec_path=tmp_path / "absent.json")

    with pytest.raises(ConfigError):
        await emulator.start()
    await emulator.aclose()
