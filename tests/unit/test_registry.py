"""agent.server.registry: plug-in providers by name, registered in-process or installed with entry
points; the settings accept exactly the known names."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

import slotline
from slotline.agent.server.calendars import build_calendars
from slotline.agent.server.registry import CALENDARS, STT, TTS, ProviderContext
from slotline.providers.errors import ConfigError
from tests.plugin_dist import MEMCAL, installed, write_distribution

BROKEN = "raise ImportError('the vendor SDK is not installed')\n"


class Silence:
    """A TTS plug-in: 20 ms of mu-law silence per word."""

    def __init__(self, context: ProviderContext[slotline.TtsSettings]) -> None:
        self.context = context

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        for _ in text.split():
            yield b"\xff" * 160


@pytest.fixture
def plugins(tmp_path: Path) -> Iterator[Path]:
    modules = {"slotline_test_memcal": MEMCAL, "slotline_test_broken": BROKEN}
    folder = write_distribution(
        tmp_path / "site", "slotline-test-plugins", modules,
        {"slotline.calendars": {"memcal": "slotline_test_memcal:MemoryCalendar",
                                "notcallable": "slotline_test_memcal:__doc__"},
         "slotline.stt": {"broken": "slotline_test_broken:Recogniser"}},
    )
    with installed(folder, modules):
        yield folder


@pytest.fixture
def silence() -> Iterator[str]:
    slotline.register_tts("silence", Silence)
    try:
        yield "silence"
    finally:
        TTS.unregister("silence")


def memcal_settings(**calendar: object) -> slotline.Settings:
    return slotline.load_settings(env={
        "SLOTLINE_CALENDARS__MAIN__PROVIDER": "memcal",
        "SLOTLINE_CALENDARS__MAIN__TIMEZONE": "Europe/Paris",
        **{f"SLOTLINE_CALENDARS__MAIN__OPTIONS__{k.upper()}": str(v) for k, v in calendar.items()},
    })


def test_a_registered_voice_is_selected_by_name_with_its_options(silence: str) -> None:
    settings = slotline.load_settings(env={"SLOTLINE_TTS__PROVIDER": silence,
                                           "SLOTLINE_TTS__OPTIONS__PACE": "slow"})
    assert settings.tts.provider == "silence"
    assert dict(settings.tts.options) == {"pace": "slow"}
    assert "silence" in TTS.names() and {"local", "elevenlabs"} <= set(TTS.names())


def test_an_unknown_name_is_refused_listing_the_known_ones(silence: str) -> None:
    with pytest.raises(slotline.InvalidConfig) as caught:
        slotline.load_settings(env={"SLOTLINE_TTS__PROVIDER": "nope"})
    assert caught.value.key == "tts.provider"
    assert caught.value.problem.startswith(
        "must be one of 'elevenlabs', 'local', 'silence', got 'nope'")
    assert "slotline.register_tts()" in caught.value.problem
    assert "'slotline.tts'" in caught.value.problem


def test_once_unregistered_the_name_is_unknown_again(silence: str) -> None:
    TTS.unregister(silence)
    with pytest.raises(slotline.InvalidConfig):
        slotline.load_settings(env={"SLOTLINE_TTS__PROVIDER": silence})


@pytest.mark.parametrize(
    ("name", "problem"),
    [("local", "is a built-in"), ("Deep Gram", "use lower-case letters"),
     ("", "use lower-case letters"), ("9lives", "starting with a letter")],
)
def test_names_that_cannot_be_registered(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        slotline.register_stt(name, lambda context: None)  # type: ignore[arg-type,return-value]


def test_a_name_is_registered_once_unless_replaced(silence: str) -> None:
    with pytest.raises(ValueError, match="already registered"):
        slotline.register_tts(silence, Silence)
    slotline.register_tts(silence, Silence, replace=True)
    assert TTS.factory(silence, "tts.provider") is Silence


def test_a_factory_must_be_callable() -> None:
    with pytest.raises(TypeError, match="not callable"):
        slotline.register_calendar("paper", "not a factory")  # type: ignore[arg-type]


def test_a_secret_in_options_is_refused_like_any_secret_in_a_file(
    silence: str, tmp_path: Path
) -> None:
    path = tmp_path / "slotline.yaml"
    path.write_text("tts: {provider: silence, options: {api_key: abc}}\n", encoding="utf-8")
    with pytest.raises(slotline.InvalidConfig) as caught:
        slotline.load_settings(path, env={})
    assert caught.value.key == "tts.options.api_key"
    assert "secrets come from the environment" in caught.value.problem


async def test_the_factory_gets_its_section_the_secrets_and_the_shared_session(
    silence: str,
) -> None:
    settings = slotline.load_settings(env={"SLOTLINE_TTS__PROVIDER": silence})
    secrets = slotline.load_secrets({"ELEVENLABS_API_KEY": "k"})
    async with aiohttp.ClientSession() as http:
        voice = TTS.build(ProviderContext(silence, settings.tts, secrets, http), "tts.provider")
        assert isinstance(voice, Silence)
        assert voice.context.settings is settings.tts and voice.context.http is http
        assert voice.context.secrets.elevenlabs_api_key is not None
        audio = [chunk async for chunk in voice.synthesize("two words")]
    assert audio == [b"\xff" * 160] * 2


async def test_a_factory_that_fails_or_returns_the_wrong_thing_is_a_config_error() -> None:
    def failing(context: ProviderContext[slotline.SttSettings]) -> slotline.SpeechToText:
        raise RuntimeError("no licence file")

    def wrong(context: ProviderContext[slotline.SttSettings]) -> slotline.SpeechToText:
        return "a string"  # type: ignore[return-value]

    settings = slotline.Settings()
    async with aiohttp.ClientSession() as http:
        for name, factory, problem in [
            ("failing", failing, "the factory of STT provider 'failing' failed: RuntimeError: "
             "no licence file"),
            ("wrong", wrong, "returned str, which has no open_stream()"),
        ]:
            slotline.register_stt(name, factory)
            try:
                context = ProviderContext(name, settings.stt, slotline.Secrets(), http)
                with pytest.raises(ConfigError) as caught:
                    STT.build(context, "stt.provider")
            finally:
                STT.unregister(name)
            assert caught.value.key == "stt.provider"
            assert problem in caught.value.problem


def test_names_from_installed_entry_points_are_known(plugins: Path) -> None:
    assert "memcal" in CALENDARS.names()
    assert "broken" in STT.names()
    assert memcal_settings().calendars["main"].provider == "memcal"


def test_without_the_distribution_the_name_is_unknown() -> None:
    with pytest.raises(slotline.InvalidConfig) as caught:
        memcal_settings()
    assert caught.value.key == "calendars.main.provider"
    assert "got 'memcal'" in caught.value.problem


async def test_an_installed_calendar_is_built_per_calendar_and_closed(plugins: Path) -> None:
    settings = memcal_settings(room="blue")
    async with aiohttp.ClientSession() as http:
        adapters = build_calendars(settings, slotline.Secrets(), http)
        calendar = adapters.by_name["main"]
        assert type(calendar).__module__ == "slotline_test_memcal"
        context = calendar.context  # type: ignore[attr-defined]
        assert (context.name, context.calendar) == ("memcal", "main")
        assert dict(context.settings.options) == {"room": "blue"}
        start = datetime(2026, 12, 8, 14, tzinfo=UTC)
        request = slotline.BookingRequest(start, start + timedelta(minutes=30),
                                          slotline.Attendee("Ada"), "key-1")
        made = await calendar.create(request)
        assert await calendar.busy(start, start + timedelta(hours=1)) == [
            slotline.BusyInterval(made.start, made.end)]
        await adapters.aclose()
        assert calendar.closed  # type: ignore[attr-defined]


async def test_an_entry_point_that_fails_to_import_is_a_config_error(plugins: Path) -> None:
    settings = slotline.load_settings(env={"SLOTLINE_STT__PROVIDER": "broken"})
    async with aiohttp.ClientSession() as http:
        context = ProviderContext("broken", settings.stt, slotline.Secrets(), http)
        with pytest.raises(ConfigError) as caught:
            STT.build(context, "stt.provider")
    assert caught.value.key == "stt.provider"
    assert caught.value.problem == (
        "entry point broken = slotline_test_broken:Recogniser (group slotline.stt) failed to "
        "load: ImportError: the vendor SDK is not installed")


async def test_an_entry_point_that_is_not_a_factory_is_a_config_error(plugins: Path) -> None:
    settings = memcal_settings()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConfigError, match="is not a callable factory") as caught:
            build_calendars(
                settings.model_copy(update={"calendars": {
                    "main": settings.calendars["main"].model_copy(
                        update={"provider": "notcallable"})}}),
                slotline.Secrets(), http)
    assert caught.value.key == "calendars.main.provider"


def test_import_slotline_stays_light_and_every_public_name_resolves() -> None:
    code = (
        "import sys, slotline\n"
        "heavy = [m for m in ('aiohttp', 'pydantic', 'slotline.agent.server.app', 'numpy') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
        "missing = [n for n in slotline.__all__ if getattr(slotline, n, None) is None]\n"
        "print(missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()
    assert out == ["[]", "[]"]
    assert set(dir(slotline)) >= set(slotline.__all__)
    with pytest.raises(AttributeError):
        slotline.no_such_name  # type: ignore[attr-defined]  # noqa: B018
