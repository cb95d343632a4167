"""``slotline emulate``: every emulator starts, answers a real request at the URL it printed,
and the environment it printed (and wrote) configures Slotline — loaded as settings and
secrets, then used by Slotline's own clients against the emulators."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shlex
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
import pytest_asyncio

from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.calendars import build_calendars
from slotline.agent.sim.emulate import EMULATORS, add_arguments, chosen, main, run_emulators, serve
from slotline.providers.calendars.base import Attendee, BookingRequest, SlotSource
from slotline.providers.errors import ConfigError
from slotline.providers.telephony.twilio_rest import TwilioRest

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the tests sharing `emulated`
NEW_YORK = ZoneInfo("America/New_York")


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="slotline emulate")
    add_arguments(parser)
    return parser.parse_args(argv)


def env_of(line: str) -> dict[str, str]:
    """``A=1 B='x y'`` (a printed line, or an env file's lines) as a mapping."""
    pairs = (word.partition("=") for word in shlex.split(line, comments=True))
    return {key: value for key, _, value in pairs}


@dataclass
class Printed:
    urls: dict[str, str]  # emulator → URL
    envs: dict[str, dict[str, str]]  # emulator (and "booking") → its environment line
    env_file: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for env in self.envs.values():
            merged.update(env)
        return merged


def read_report(text: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    urls: dict[str, str] = {}
    envs: dict[str, dict[str, str]] = {}
    name = ""
    for line in text.splitlines()[1:]:
        if not line.strip() or line.startswith(("wrote ", "slotline ")):
            continue
        if not line.startswith(" "):
            name, url = line.split()[:2]
            urls[name] = url
        elif not line.strip().startswith("#"):
            envs[name] = env_of(line)
    urls.pop("booking")  # its line is the pool, not a server
    return urls, envs


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def printed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Printed]:
    env_file = tmp_path_factory.mktemp("emulate") / "emulated.env"
    out, stop, ready = io.StringIO(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve(parse_args("--env-file", str(env_file)), out=out, stop=stop, ready=ready)
    )
    async with asyncio.timeout(30):
        await asyncio.wait([task, asyncio.create_task(ready.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
    assert ready.is_set(), out.getvalue()
    urls, envs = read_report(out.getvalue())
    yield Printed(urls, envs, env_of(env_file.read_text()))
    stop.set()
    assert await task == 0


@MODULE_LOOP
async def test_every_emulator_is_printed_with_its_environment(printed: Printed) -> None:
    assert list(printed.urls) == list(EMULATORS)
    assert all(url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:"))
               for url in printed.urls.values())
    assert printed.envs["deepgram"] == {
        "SLOTLINE_STT__PROVIDER": "deepgram",
        "SLOTLINE_STT__BASE_URL": printed.urls["deepgram"],
        "DEEPGRAM_API_KEY": printed.envs["deepgram"]["DEEPGRAM_API_KEY"],
    }
    assert printed.envs["booking"] == {
        "SLOTLINE_BOOKING_ACTIONS__DEMO__CALENDARS": "calcom,ghl,google,outlook,webhook"
    }
    assert printed.env_file == printed.env  # the file holds exactly what was printed


@MODULE_LOOP
async def test_the_printed_environment_loads_as_settings_and_secrets(printed: Printed) -> None:
    settings = load_settings(None, printed.env)
    secrets = load_secrets(printed.env)
    assert (settings.stt.provider, settings.llm.provider, settings.tts.provider) == (
        "deepgram", "openai", "elevenlabs",
    )
    assert settings.twilio.base_url == printed.urls["twilio"]
    providers = {name: cal.provider for name, cal in settings.calendars.items()}
    assert providers == {"main": "local", "calcom": "calcom", "ghl": "ghl", "google": "google",
                         "outlook": "outlook", "webhook": "webhook"}
    assert settings.booking_actions["demo"].calendars == (
        "calcom", "ghl", "google", "outlook", "webhook",
    )
    missing = [name for name, value in secrets.model_dump().items()
               if value is None and name not in {"google_oauth_refresh_token",
                                                 "google_oauth_client_secret", "caldav_password",
                                                 "slotline_api_token", "smtp_password"}]
    assert missing == []


@MODULE_LOOP
async def test_the_voice_vendors_answer_at_their_printed_urls(printed: Printed) -> None:
    env = printed.env
    async with aiohttp.ClientSession() as http:
        listen = (f"{printed.urls['deepgram']}/v1/listen?model=nova-3&encoding=mulaw"
                  "&sample_rate=8000&channels=1")
        token = {"Authorization": f"Token {env['DEEPGRAM_API_KEY']}"}
        async with http.ws_connect(listen, headers=token) as ws:
            await ws.send_str('{"type": "CloseStream"}')
            message = await ws.receive_json(timeout=5)
            assert message["type"] == "Metadata"
        bearer = {"Authorization": f"Bearer {env['OPENAI_API_KEY']}"}
        async with http.get(f"{printed.urls['openai']}/models", headers=bearer) as response:
            assert response.status == 200
            models = [m["id"] for m in (await response.json())["data"]]
            assert env["SLOTLINE_LLM__MODEL"] in models
        speech = (f"{printed.urls['elevenlabs'].replace('ws://', 'http://')}/v1/text-to-speech/"
                  f"{env['SLOTLINE_TTS__VOICE_ID']}/stream?output_format=ulaw_8000")
        key = {"xi-api-key": env["ELEVENLABS_API_KEY"]}
        async with http.post(speech, json={"text": "Hello."}, headers=key) as response:
            assert response.status == 200
            assert len(await response.read()) > 1600  # over 0.2 s of 8 kHz mu-law


@MODULE_LOOP
async def test_twilio_answers_slotlines_rest_client(printed: Printed) -> None:
    env = printed.env
    async with TwilioRest(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"],
                          base_url=env["SLOTLINE_TWILIO__BASE_URL"]) as rest:
        sid = await rest.send_sms("+15551234567", env["SLOTLINE_TWILIO__FROM_NUMBER"], "Hi")
    assert sid.startswith("SM")


def next_weekday_at(hour: int) -> datetime:
    day = datetime.now(NEW_YORK).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), NEW_YORK)


async def free_starts(calendar: SlotSource, opening: datetime) -> list[datetime]:
    slots = await calendar.free_slots(opening, opening + timedelta(hours=8), 30,
                                      "America/New_York")
    return [slot.start for slot in slots]


@MODULE_LOOP
async def test_every_emulated_calendar_books_through_slotlines_adapters(
    printed: Printed,
) -> None:
    settings, secrets = load_settings(None, printed.env), load_secrets(printed.env)
    opening = next_weekday_at(9)
    async with aiohttp.ClientSession() as http:
        adapters = build_calendars(settings, secrets, http)
        try:
            assert sorted(adapters.by_name) == ["calcom", "ghl", "google", "outlook", "webhook"]
            for name, calendar in adapters.by_name.items():
                start = opening + timedelta(hours=1)
                if isinstance(calendar, SlotSource):  # the vendor's own slots: 09:00 first
                    assert (await free_starts(calendar, opening))[:3] == [
                        opening, opening + timedelta(minutes=30), start,
                    ], name
                request = BookingRequest(
                    start, start + timedelta(minutes=30),
                    Attendee("Ada Lovelace", "ada@example.com", "+15551234567",
                             "America/New_York"),
                    idempotency_key=f"emulate-test/{name}", title="Demo",
                )
                booked = await calendar.create(request)
                assert booked.status == "confirmed" and booked.start == start, name
                if isinstance(calendar, SlotSource):  # the vendor took the slot out
                    assert start not in await free_starts(calendar, opening), name
                else:  # Slotline reads free/busy itself
                    busy = await calendar.busy(opening, opening + timedelta(hours=8))
                    assert [(b.start, b.end) for b in busy] == [(start, request.end)], name
        finally:
            await adapters.aclose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_base_port_puts_each_emulator_at_its_fixed_offset() -> None:
    port = free_port()
    base = port - EMULATORS.index("calcom")
    async with run_emulators(["calcom"], base_port=base) as running:
        [calcom] = running
        assert calcom.url == f"http://127.0.0.1:{port}"
        assert calcom.env["SLOTLINE_CALENDARS__CALCOM__BASE_URL"] == calcom.url


async def test_a_taken_port_stops_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        args = parse_args("twilio", "--base-port", str(port - EMULATORS.index("twilio")))
        code = await serve(args, out=io.StringIO(), stop=asyncio.Event())
    assert code == 2
    assert str(port) in capsys.readouterr().err


async def test_an_unknown_emulator_is_refused_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError, match="deepgram, openai"):
        chosen(["calcom", "outlook"])
    assert chosen(["webhook", "twilio", "twilio"]) == ("twilio", "webhook")
    code = await serve(parse_args("nope"), out=io.StringIO(), stop=asyncio.Event())
    assert code == 2 and "nope" in capsys.readouterr().err


async def test_the_cloud_profile_slows_every_vendor_down() -> None:
    async with run_emulators(["openai", "twilio", "graph"], profile="cloud") as running:
        openai, twilio, graph = (item.emulator for item in running)
        assert openai.latency.first_token_delay_ms > 0
        assert twilio.latency_ms > 0 and graph.latency_ms > 0
    async with run_emulators(["twilio"]) as running:
        assert running[0].emulator.latency_ms == 0


async def test_ctrl_c_stops_the_command_cleanly(tmp_path: Path) -> None:
    env_file = tmp_path / "emulated.env"
    command = asyncio.create_task(main(parse_args("webhook", "--env-file", str(env_file))))
    url = "SLOTLINE_CALENDARS__WEBHOOK__BASE_URL"
    env: Mapping[str, str] = {}
    async with asyncio.timeout(10):
        while url not in env:  # written once the signal handlers are in place
            assert not command.done()
            await asyncio.sleep(0.01)
            env = env_of(env_file.read_text()) if env_file.exists() else {}
    os.kill(os.getpid(), signal.SIGINT)
    assert await command == 0
    async with aiohttp.ClientSession() as http:  # the emulator is gone
        with pytest.raises(aiohttp.ClientConnectionError):
            body = orjson.dumps({"action": "availability"})
            await http.post(env[url], data=body)
