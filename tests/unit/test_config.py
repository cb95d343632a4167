"""Settings: defaults, file and environment precedence, error messages, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from slotline.agent.config import (
    SECRET_ENV_NAMES,
    BookingActionSettings,
    CalendarSettings,
    ConfigError,
    InvalidConfig,
    Secrets,
    Settings,
    load_secrets,
    load_settings,
    redacted_dump,
)

DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "config" / "slotline.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slotline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, env: dict[str, str] | None = None) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        load_settings(path, env or {})
    return caught.value


# ---- defaults ---------------------------------------------------------------------------------


def test_shipped_defaults_file_equals_embedded_defaults() -> None:
    assert load_settings(DEFAULTS_FILE, {}) == Settings()
    assert load_settings(None, {}) == Settings()


def test_shipped_defaults_file_spells_out_every_key() -> None:
    raw = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    assert list(raw) == list(Settings.model_fields)
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            assert list(raw[section]) == list(model.model_fields), section
    demo = raw["booking_actions"]["demo"]
    assert list(demo) == list(BookingActionSettings.model_fields)
    assert demo["calendars"] == ["main"] and demo["strategy"] == "first_available"
    assert demo["business_hours"] == {day: ["09:00-17:00"] for day in
                                      ("mon", "tue", "wed", "thu", "fri")}


def test_contract_default_values() -> None:
    s = Settings()
    assert (s.server.host, s.server.port, s.server.public_url) == ("127.0.0.1", 8080, "")
    assert s.store.url == "sqlite:///slotline.db"
    assert (s.stt.provider, s.llm.provider, s.tts.provider) == ("local", "rules", "local")
    assert s.twilio.base_url == "https://api.twilio.com"
    assert s.flow == "demo_booking"
    assert s.calendars["main"].provider == "local"
    assert s.calendars["main"].timezone == "America/New_York"
    demo = s.booking_actions["demo"]
    assert (demo.calendars, demo.strategy, demo.duration_min) == (("main",), "first_available", 30)
    assert (s.turn.vad, s.turn.vad_aggressiveness, s.turn.end_silence_ms) == ("webrtc", 2, 600)
    assert s.log.level == "INFO"


def test_settings_are_frozen_and_hashable() -> None:
    settings = load_settings(None, {})
    assert hash(settings) == hash(Settings())
    assert {settings: 1}[Settings()] == 1
    with pytest.raises(ValidationError):
        settings.server.port = 1
    with pytest.raises(TypeError):
        settings.calendars["x"] = settings.calendars["main"]  # type: ignore[index]


# ---- precedence -------------------------------------------------------------------------------


def test_user_file_overrides_defaults_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, """
server: {port: 9090}
stt: {provider: deepgram, base_url: "ws://127.0.0.1:9001"}
calendars:
  main: {provider: calcom, event_type_id: 42}
  alice: {provider: google, timezone: Europe/Paris, calendar_id: alice@example.com}
booking_actions:
  demo: {calendars: [main, alice], strategy: round_robin}
log:   # only comments: nothing changes
""")
    s = load_settings(path, {})
    assert s.server.port == 9090
    assert s.server.host == "127.0.0.1"
    assert (s.stt.provider, s.stt.base_url) == ("deepgram", "ws://127.0.0.1:9001")
    assert s.calendars["main"] == CalendarSettings(
        provider="calcom", timezone="America/New_York", event_type_id=42
    )
    assert s.calendars["alice"].calendar_id == "alice@example.com"
    assert s.booking_actions["demo"].calendars == ("main", "alice")
    assert s.booking_actions["demo"].duration_min == 30
    assert s.log.level == "INFO"


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 9090}\nstt: {provider: deepgram}\n")
    env = {
        "SLOTLINE_SERVER__PORT": "7000",
        "SLOTLINE_STT__PROVIDER": "local",
        "SLOTLINE_FLOW": "sales",
        "SLOTLINE_LOG__LEVEL": "debug",
        "PATH": "/usr/bin",
    }
    s = load_settings(path, env)
    assert (s.server.port, s.stt.provider, s.flow, s.log.level) == (7000, "local", "sales", "DEBUG")


def test_environment_overrides_nested_calendar_and_coerces_types() -> None:
    env = {
        "SLOTLINE_CALENDARS__MAIN__PROVIDER": "calcom",
        "SLOTLINE_CALENDARS__MAIN__BASE_URL": "http://127.0.0.1:9002",
        "SLOTLINE_CALENDARS__MAIN__EVENT_TYPE_ID": "123",
    }
    main = load_settings(None, env).calendars["main"]
    assert (main.provider, main.base_url, main.event_type_id) == (
        "calcom", "http://127.0.0.1:9002", 123
    )
    assert main.timezone == "America/New_York"


def test_environment_creates_a_calendar_and_pools_it() -> None:
    env = {
        "SLOTLINE_CALENDARS__TEAM__PROVIDER": "ghl",
        "SLOTLINE_CALENDARS__TEAM__TIMEZONE": "America/Chicago",
        "SLOTLINE_CALENDARS__TEAM__CALENDAR_ID": "cal1",
        "SLOTLINE_CALENDARS__TEAM__LOCATION_ID": "loc1",
        "SLOTLINE_BOOKING_ACTIONS__DEMO__CALENDARS": "main, team",
        "SLOTLINE_BOOKING_ACTIONS__DEMO__DURATION_MIN": "45",
    }
    s = load_settings(None, env)
    assert set(s.calendars) == {"main", "team"}
    assert (s.calendars["team"].provider, s.calendars["team"].location_id) == ("ghl", "loc1")
    assert s.booking_actions["demo"].calendars == ("main", "team")
    assert s.booking_actions["demo"].duration_min == 45


def test_environment_reaches_a_calendar_named_in_mixed_case(tmp_path: Path) -> None:
    path = write(tmp_path, "calendars:\n  Alice: {provider: local, timezone: UTC}\n")
    s = load_settings(path, {"SLOTLINE_CALENDARS__ALICE__TIMEZONE": "Asia/Tokyo"})
    assert set(s.calendars) == {"main", "Alice"}
    assert s.calendars["Alice"].timezone == "Asia/Tokyo"


# ---- errors: the source, the key and the problem ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("server:\n  port: 1\n host: [\n", "line 3", "invalid YAML"),
        ("server:\n  port: 1\n  port: 2\n", "line 3", "duplicate key 'port'"),
        ("- server\n", "(top level)", "expected a mapping of sections, got list"),
        ("server: {prot: 1}\n", "server.prot", "unknown key (did you mean 'port'?)"),
        ("colour: red\n", "colour", "unknown key"),
        ("server: {port: http}\n", "server.port", "must be a valid integer"),
        ("server: 8080\n", "server", "must be a valid dictionary"),
        ("stt: {provider: whisper}\n", "stt.provider", "one of 'deepgram', 'local', got 'wh"),
        ("turn: {vad_aggressiveness: 4}\n", "turn.vad_aggressiveness", "less than or equal to 3"),
        ("twilio: {from_number: +15551234567}\n", "twilio.from_number", "quote it in YAML"),
        ("stt: {base_url: https://x}\n", "stt.base_url", "not a URL starting with ws:// or wss://"),
        ("server: {public_url: 'https://a.b'}\n", "server.public_url", "give the host only"),
        ("store: {url: 'mysql://x'}\n", "store.url", "must start with sqlite:/// or postgresql://"),
        (
            "calendars: {main: {timezone: America/Nowhere}}\n",
            "calendars.main.timezone",
            "'America/Nowhere' is not an IANA time zone",
        ),
        ("calendars: {x: {provider: local}}\n", "calendars.x.timezone", "required"),
        (
            "calendars: {main: {provider: ghl, calendar_id: c}}\n",
            "calendars.main.location_id",
            "required when provider is ghl",
        ),
        ("calendars: {main: {provider: caldav}}\n", "calendars.main.base_url", "required"),
        ("calendars: {main: {provider: office}}\n", "calendars.main.provider", "got 'office'"),
        (
            "booking_actions: {demo: {calendars: [main, bob]}}\n",
            "booking_actions.demo.calendars",
            "no calendar named 'bob' (defined: main)",
        ),
        ("booking_actions: {demo: {duration_min: 0}}\n", "booking_actions.demo.duration_min",
         "greater than 0"),
        ("booking_actions: {demo: {calendars: []}}\n", "booking_actions.demo.calendars",
         "at least 1 item"),
        ("booking_actions: {demo: {calendars: [main], strategy: random}}\n",
         "booking_actions.demo.strategy", "'first_available', 'round_robin' or 'collective'"),
    ],
)
def test_file_errors_name_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    assert isinstance(error, ConfigError)
    assert (error.source, error.key) == (str(path), key)
    assert problem in error.problem
    assert str(error).startswith(f"{path}: {key}: ")


def test_missing_user_file_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path / "nope.yaml")
    assert (error.source, error.key, error.problem) == (
        str(tmp_path / "nope.yaml"), "(file)", "file not found"
    )


def test_empty_user_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing yet\n"), {}) == Settings()


@pytest.mark.parametrize(
    ("env", "key", "problem"),
    [
        ({"SLOTLINE_SERVER__PORT": "http"}, "server.port", "must be a valid integer, "),
        ({"SLOTLINE_STT__PROVIDER": "whisper"}, "stt.provider", "got 'whisper'"),
        ({"SLOTLINE_CALENDARS__MAIN__EVENT_TYPE_ID": "abc"}, "calendars.main.event_type_id",
         "must be a valid integer"),
        ({"SLOTLINE_STT__PROVDER": "local"}, "stt.provder", "did you mean 'provider'?"),
        ({"SLOTLINE_STT_PROVIDER": "local"}, "stt_provider",
         "nest keys with '__': SLOTLINE_STT__PROVIDER"),
        ({"SLOTLINE_STT____PROVIDER": "local"}, "SLOTLINE_STT____PROVIDER", "empty key"),
        ({"SLOTLINE_TWILIO__AUTH_TOKEN": "x"}, "twilio.auth_token",
         "secrets come from the environment: set TWILIO_AUTH_TOKEN instead"),
    ],
)
def test_environment_errors_name_the_variable(env: dict[str, str], key: str, problem: str) -> None:
    error = error_of(None, env)
    (name,) = env
    assert (error.source, error.key) == (f"environment {name}", key)
    assert problem in error.problem


def test_missing_provider_key_blames_whoever_chose_the_provider() -> None:
    error = error_of(None, {"SLOTLINE_CALENDARS__MAIN__PROVIDER": "calcom"})
    assert str(error) == (
        "environment SLOTLINE_CALENDARS__MAIN__PROVIDER: calendars.main.event_type_id: "
        "required when provider is calcom"
    )


def test_all_problems_are_reported_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: x}\ncalendars: {main: {timezone: Mars/Base}}\n")
    error = error_of(path, {"SLOTLINE_TURN__MAX_TURN_S": "-1"})
    keys = [p.key for p in error.problems]
    assert sorted(keys) == ["calendars.main.timezone", "server.port", "turn.max_turn_s"]
    message = str(error)
    assert message.startswith("3 problems:\n")
    assert f"{path}: server.port: " in message
    assert f"{path}: calendars.main.timezone: 'Mars/Base' is not an IANA time zone" in message
    assert "environment SLOTLINE_TURN__MAX_TURN_S: turn.max_turn_s: must be greater than 0" in (
        message
    )


# ---- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "variable"),
    [
        ("twilio: {auth_token: abc}\n", "twilio.auth_token", "TWILIO_AUTH_TOKEN"),
        ("twilio: {account_sid: AC1}\n", "twilio.account_sid", "TWILIO_ACCOUNT_SID"),
        ("stt: {api_key: k}\n", "stt.api_key", "DEEPGRAM_API_KEY"),
        ("calendars: {main: {provider: calcom, event_type_id: 1, api_key: k}}\n",
         "calendars.main.api_key", "CALCOM_API_KEY"),
        ("calendars: {main: {provider: caldav, base_url: 'https://d/c/', password: p}}\n",
         "calendars.main.password", "CALDAV_PASSWORD"),
        ("openai_api_key: k\n", "openai_api_key", "OPENAI_API_KEY"),
    ],
)
def test_secrets_in_a_file_are_rejected(tmp_path: Path, text: str, key: str, variable: str) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    assert [(p.source, p.key) for p in error.problems] == [(str(path), key)]
    assert error.problem == f"secrets come from the environment: set {variable} instead"


def test_secret_variables_are_not_settings_overrides() -> None:
    env = {"SLOTLINE_API_TOKEN": "t0k", "SLOTLINE_WEBHOOK_SECRET": "s3c"}
    assert load_settings(None, env) == Settings()


def test_secrets_come_from_the_environment_as_secret_strings() -> None:
    env = {name: f"value-of-{name}" for name in SECRET_ENV_NAMES}
    secrets = load_secrets(env)
    for name in SECRET_ENV_NAMES:
        value = getattr(secrets, name.lower())
        assert isinstance(value, SecretStr)
        assert value.get_secret_value() == f"value-of-{name}"
    assert "value-of" not in repr(secrets)
    assert "value-of" not in str(secrets)
    assert "value-of" not in secrets.model_dump_json()


def test_unset_or_blank_secrets_are_none_and_whitespace_is_dropped() -> None:
    secrets = load_secrets({"TWILIO_AUTH_TOKEN": "tok\n", "OPENAI_API_KEY": "  ", "X": "y"})
    assert secrets.twilio_auth_token is not None
    assert secrets.twilio_auth_token.get_secret_value() == "tok"
    assert secrets.openai_api_key is None
    assert load_secrets({}) == Secrets()
    with pytest.raises(ValidationError):
        secrets.openai_api_key = SecretStr("x")


def test_redacted_dump_is_json_and_masks_url_passwords() -> None:
    env = {"SLOTLINE_STORE__URL": "postgresql://app:hunter2@db:5432/slotline"}
    dumped = redacted_dump(load_settings(None, env))
    text = json.dumps(dumped)
    assert "hunter2" not in text
    assert dumped["store"]["url"] == "postgresql://app:***@db:5432/slotline"
    assert dumped["calendars"]["main"]["timezone"] == "America/New_York"
    assert dumped["booking_actions"]["demo"]["calendars"] == ["main"]


def test_booking_hours_and_overrides_are_validated(tmp_path: Path) -> None:
    user = tmp_path / "bad.yaml"
    user.write_text(
        "booking_actions:\n  demo:\n    calendars: [main]\n"
        "    business_hours: {mon: ['17:00-09:00'], funday: ['09:00-10:00']}\n"
        "    date_overrides: {'2026-13-01': []}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(user, {})
    message = str(caught.value)
    assert str(user) in message
    assert "booking_actions.demo.business_hours" in message
    assert "ends before it starts" in message


def test_booking_day_names_and_override_dates(tmp_path: Path) -> None:
    user = tmp_path / "bad.yaml"
    user.write_text(
        "booking_actions:\n  demo:\n    calendars: [main]\n"
        "    business_hours: {funday: ['09:00-10:00']}\n"
        "    date_overrides: {'2026-13-01': []}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(user, {})
    message = str(caught.value)
    assert "booking_actions.demo.business_hours.funday" in message
    assert "booking_actions.demo.date_overrides.2026-13-01" in message
