"""The typed, frozen settings tree. Its defaults ARE Slotline's embedded defaults.

``config/slotline.yaml`` spells out the same values with comments (a test keeps the two equal),
so ``slotline serve`` runs on these defaults even when installed as a wheel without that file.
Loading files and the environment into this tree lives in ``agent.config``.

Checks that involve several keys raise ``FieldProblems``, which names the offending sub-keys, so
the loader can report ``calendars.main.event_type_id`` rather than just ``calendars.main``.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from slotline.agent.server.event_loop import EventLoopChoice
from slotline.agent.server.registry import CALENDARS, STT, TTS

V = TypeVar("V")


class FieldProblems(ValueError):
    """Problems found by a check spanning several keys: ``(sub-key path, problem)`` pairs."""

    def __init__(self, problems: Sequence[tuple[tuple[str, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(key)}: {problem}" for key, problem in problems))
        self.problems = tuple(problems)


class FrozenMap(Mapping[str, V]):
    """A read-only, hashable ``str -> V`` mapping, so a ``Settings`` with named tables is hashable.

    Validates like ``dict[str, V]`` and serializes back to a plain ``dict``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, V]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        (value_type,) = get_args(source) or (Any,)
        as_dict = handler.generate_schema(dict[str, value_type])  # type: ignore[valid-type]
        return core_schema.no_info_after_validator_function(
            cls,
            as_dict,
            serialization=core_schema.wrap_serializer_function_ser_schema(
                lambda value, serialize: serialize(dict(value)), schema=as_dict
            ),
        )


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _url_check(value: str, schemes: tuple[str, ...]) -> str:
    """``""`` (the adapter's vendor default) or an absolute URL with one of ``schemes``."""
    if value == "":
        return value
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest or rest.startswith("/"):
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{value!r} is not a URL starting with {allowed}")
    return value


def _http_url(value: str) -> str:
    return _url_check(value, ("http", "https"))


def _ws_url(value: str) -> str:
    return _url_check(value, ("ws", "wss"))


def _split_names(value: object) -> object:
    """Lets a list of names be written ``main, alice`` (the only way an env variable can)."""
    if isinstance(value, str):
        return tuple(name.strip() for name in value.split(",") if name.strip())
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
WsUrl = Annotated[str, AfterValidator(_ws_url)]
NameList = Annotated[tuple[str, ...], BeforeValidator(_split_names), Field(min_length=1)]
# A plug-in provider's own keys (agent.server.registry); built-in providers take none.
ProviderOptions = FrozenMap[str | int | float | bool]


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Host (and optional path) Twilio reaches us at: TwiML streams to wss://<public_url>/twilio/media.
    public_url: str = ""
    max_message_bytes: int = Field(default=65536, gt=0)
    workers: int = Field(default=1, ge=1)
    # auto: uvloop where installed (agent.server.event_loop: -9 % CPU per call), else asyncio's
    event_loop: EventLoopChoice = "auto"
    # /metrics behind the API's rule (bearer SLOTLINE_API_TOKEN, or this machine only)
    metrics_auth: bool = False
    # Peers (addresses or CIDRs) whose Forwarded / X-Forwarded-Proto / X-Forwarded-Host headers
    # say which URL a client used (agent.server.forwarded); loopback: ngrok or a local Caddy.
    trusted_proxies: Annotated[tuple[str, ...], BeforeValidator(_split_names)] = (
        "127.0.0.1", "::1",
    )

    @field_validator("public_url")
    @classmethod
    def _host_only(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"{value!r}: give the host only (e.g. abc.ngrok.app), no scheme")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
        return value


class StoreSettings(_Section):
    url: str = "sqlite:///slotline.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value.partition("://")[0] not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value


class SttSettings(_Section):
    provider: Annotated[str, AfterValidator(STT.check)] = "local"  # or a plug-in's name
    base_url: WsUrl = ""
    model: str = ""
    options: ProviderOptions = FrozenMap({})


class LlmSettings(_Section):
    provider: Literal["rules", "openai"] = "rules"
    base_url: HttpUrl = ""  # SDK style, including /v1
    model: str = ""


class TtsSettings(_Section):
    provider: Annotated[str, AfterValidator(TTS.check)] = "local"  # or a plug-in's name
    base_url: WsUrl = ""
    voice_id: str = ""
    model_id: str = ""
    options: ProviderOptions = FrozenMap({})


class TwilioSettings(_Section):
    base_url: HttpUrl = "https://api.twilio.com"
    from_number: str = ""


class DialerSettings(_Section):
    """Outbound calls: numbers written without a country code are read in ``region``; Twilio
    reaches the callbacks at ``callback_url`` (default ``https://<server.public_url>``, else the
    server's own address)."""

    region: str = Field(default="US", min_length=2, max_length=2)
    callback_url: HttpUrl = ""


# Keys each built-in calendar provider cannot work without (its secrets come from the
# environment); a plug-in checks its own.
REQUIRED_CALENDAR_KEYS: Mapping[str, tuple[str, ...]] = {
    "local": (),
    "calcom": ("event_type_id",),
    "ghl": ("calendar_id", "location_id"),
    "google": ("calendar_id",),
    "outlook": ("tenant_id", "client_id", "user"),
    "caldav": ("base_url",),
    "webhook": ("base_url",),
}


class CalendarSettings(_Section):
    provider: Annotated[str, AfterValidator(CALENDARS.check)]  # built in, or a plug-in's name
    timezone: str  # IANA zone: business hours and spoken times are in it
    base_url: HttpUrl = ""
    event_type_id: int | None = None  # calcom
    calendar_id: str | None = None  # ghl, google
    location_id: str | None = None  # ghl
    token_url: str | None = None  # outlook, google (default: the vendor's token endpoint)
    tenant_id: str | None = None  # outlook
    client_id: str | None = None  # outlook; google with an OAuth refresh token
    user: str | None = None  # outlook: the mailbox whose calendar is booked
    username: str | None = None  # caldav
    subject: str | None = None  # google service account: the Workspace user to act as
    invite_attendees: bool = True  # google: False when a service account cannot invite
    # calcom: booking question slug → the flow variable answering it (default: the variable of
    # the slug's name); ghl: contact custom field key or id → flow variable
    fields: FrozenMap[str] = FrozenMap({})
    auto_confirm: bool = True  # ghl: appointments "confirmed", else "new" (staff confirm them)
    title: str = ""  # ghl: the appointment title, a template over flow variables ("{user_name}")
    tags: tuple[str, ...] = ()  # ghl: tags put on the contact, templates over flow variables
    options: ProviderOptions = FrozenMap({})  # a plug-in calendar's own keys

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @model_validator(mode="after")
    def _provider_keys_present(self) -> CalendarSettings:
        missing = [
            key
            for key in REQUIRED_CALENDAR_KEYS.get(self.provider, ())
            if getattr(self, key) in (None, "")
        ]
        if missing:
            raise FieldProblems(
                [((key,), f"required when provider is {self.provider}") for key in missing]
            )
        return self


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RANGE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")


def _hours_ranges(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        if not _HOURS_RANGE.match(item):
            raise ValueError(f"{item!r} is not a range like '09:00-17:00'")
        start, end = item.split("-")
        if end <= start:
            raise ValueError(f"{item!r} ends before it starts")
    return value


HoursRanges = Annotated[tuple[str, ...], AfterValidator(_hours_ranges)]


def _office_hours() -> FrozenMap[HoursRanges]:
    return FrozenMap({day: ("09:00-17:00",) for day in _WEEKDAYS[:5]})


_REMINDER = re.compile(r"^[1-9]\d*[mhd]$")


def _reminder_offsets(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        if not _REMINDER.match(item):
            raise ValueError(f"{item!r} is not an offset like '24h', '1h' or '30m'")
    if len(set(value)) != len(value):
        raise ValueError("an offset is listed twice")
    return value


class ConfirmationSettings(_Section):
    """What the caller receives once booked: a text, an e-mail, and reminders before the time."""

    sms: bool = False  # needs Twilio credentials and twilio.from_number
    email: bool = False  # needs the `email` section
    reminders: Annotated[
        tuple[str, ...], BeforeValidator(_split_names), AfterValidator(_reminder_offsets)
    ] = ()  # e.g. ["24h", "1h"]; from the environment "24h,1h"


class BookingActionSettings(_Section):
    """A bookable service: the calendars it pools, how it picks one, and its rules.

    Business hours are in each calendar's own time zone; a date override replaces that date's
    hours (an empty list closes the day).
    """

    calendars: NameList  # names in `calendars`; several pool a team
    strategy: Literal["first_available", "round_robin", "collective"] = "first_available"
    duration_min: int = Field(default=30, gt=0)
    slot_interval_min: int | None = Field(default=None, gt=0)  # None = the duration
    buffer_before_min: int = Field(default=0, ge=0)
    buffer_after_min: int = Field(default=0, ge=0)
    min_notice_min: int = Field(default=60, ge=0)
    max_days_ahead: int = Field(default=30, gt=0)
    daily_limit: int | None = Field(default=None, gt=0)
    business_hours: FrozenMap[HoursRanges] = Field(default_factory=_office_hours)
    date_overrides: FrozenMap[HoursRanges] = FrozenMap({})
    calendar_timeout_s: float = Field(default=3.0, gt=0)  # per calendar, fetched concurrently
    on_calendar_error: Literal["skip", "fail"] = "skip"  # a failing calendar: skip it or fail
    confirmations: ConfirmationSettings = ConfirmationSettings()

    @model_validator(mode="after")
    def _known_days(self) -> BookingActionSettings:
        problems = [
            (("business_hours", day), f"not a weekday (use {', '.join(_WEEKDAYS)})")
            for day in self.business_hours
            if day not in _WEEKDAYS
        ]
        for day in self.date_overrides:
            try:
                date.fromisoformat(day)
            except ValueError:
                problems.append((("date_overrides", day), "not a date like 2026-12-24"))
        if problems:
            raise FieldProblems(problems)
        return self


class EmailSettings(_Section):
    """SMTP for confirmations and reminders; the password comes from ``SMTP_PASSWORD``."""

    smtp_host: str = ""  # "" = e-mail is off
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    from_address: str = ""
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _sender_known(self) -> EmailSettings:
        if self.smtp_host and "@" not in self.from_address:
            raise FieldProblems([(("from_address",), "required (an address) with smtp_host")])
        return self


class WebhookSettings(_Section):
    """A flow's custom action (``webhook`` node): POSTed JSON, signed with
    ``SLOTLINE_WEBHOOK_SECRET``."""

    url: Annotated[HttpUrl, Field(min_length=1)]
    timeout_s: float = Field(default=5.0, gt=0)


class CallWebhookSettings(_Section):
    """The end-of-call webhook (``agent.call.webhook``): the call record POSTed to ``url``,
    signed with ``SLOTLINE_WEBHOOK_SECRET``, retried with back-off until a 2xx."""

    url: HttpUrl = ""  # "" = off
    timeout_s: float = Field(default=10.0, gt=0)  # per attempt
    max_attempts: int = Field(default=12, ge=1)  # then given up (kept, with its last error)
    first_retry_s: float = Field(default=5.0, gt=0)  # doubles per attempt, capped at an hour


def _on_off(value: object) -> object:
    # YAML 1.1 reads a bare on/off as true/false
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


OnOffAuto = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]


class TurnSettings(_Section):
    vad: Literal["webrtc", "silero"] = "webrtc"
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    end_silence_ms: int = Field(default=600, gt=0)
    short_silence_ms: int = Field(default=400, gt=0)
    long_silence_ms: int = Field(default=1200, gt=0)
    # silence that ends a turn whose final words already hold the answer the question waits
    # for ("next tuesday", "john at gmail dot com"; agent.flow.completeness)
    complete_silence_ms: int = Field(default=200, gt=0)
    # ... once the final words answer nothing yet at a question waiting for a date, a time, a
    # name, a yes/no or a phone number ("i'd like to book ..."): the caller pauses mid-sentence
    unanswered_silence_ms: int = Field(default=1000, gt=0)
    # ... once the final words hold half an answer ("my name is kate", "at three")
    partial_silence_ms: int = Field(default=1000, gt=0)
    min_speech_ms: int = Field(default=120, gt=0)
    # caller speech over the agent that clears its audio and holds the reply at once; the
    # caller's words then decide (no words or a backchannel: it resumes; agent.call.floor)
    bargein_min_speech_ms: int = Field(default=80, gt=0)
    # a reply that has said nothing this long after the caller's turn says a filler: past
    # ~0.7 s a phone pause starts to sound like a dropped line
    filler_after_ms: int = Field(default=700, ge=0)
    # silence inside a turn at which the recogniser is asked to finish early (and the
    # end-of-turn model, if any, runs), so the words are there when the turn ends: the
    # vendor's flush (~150 ms) then lands before complete_silence_ms has passed
    speculate_ms: int = Field(default=120, gt=0)
    # the end-of-turn model's probability at or above which an open answer is over
    model_end_threshold: float = Field(default=0.5, gt=0, le=1)
    # the audio end-of-turn model for open questions (Smart Turn v3, agent.call.smart_turn):
    # auto = used when the `smartturn` extra and the pipecat-ai wheel are installed, on = they
    # must be (start-up fails naming what to install), off = never
    smart_turn: OnOffAuto = "off"
    max_turn_s: int = Field(default=30, gt=0)
    outbound_lead_ms: int = Field(default=300, ge=0)
    # silence after speech from which the reply's model request may start on the pause's
    # settled words (the recogniser's early finish, agent.call.early_start); used only if the
    # turn's final words are the same, cancelled if the caller goes on (0: never start early)
    early_llm_ms: int = Field(default=100, ge=0)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]


class RecordingSettings(_Section):
    """Call recordings (``agent.server.recording_store``), off unless enabled: both sides as a
    two-channel WAV, ``<folder>/<YYYY-MM-DD>/<call_sid>.wav``, deleted after
    ``retention_days`` (0: kept). Telling callers they are recorded is the flow's business."""

    enabled: bool = False
    folder: str = Field(default="recordings", min_length=1)  # relative: to the working dir
    retention_days: int = Field(default=30, ge=0)
    max_duration_s: int = Field(default=1800, gt=0)  # a longer call's recording stops here


class LogSettings(_Section):
    level: LogLevel = "INFO"
    # json: one object per line (call_sid, stream_sid, node, pid) for a log shipper
    format: Literal["text", "json"] = "text"


class TracingSettings(_Section):
    """OpenTelemetry traces (``agent.tracing``; needs the ``otel`` extra), exported as the
    standard ``OTEL_*`` environment variables say."""

    enabled: bool = False


class Settings(_Section):
    """Everything Slotline is configured with, except secrets (see ``Secrets``)."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    stt: SttSettings = SttSettings()
    llm: LlmSettings = LlmSettings()
    tts: TtsSettings = TtsSettings()
    twilio: TwilioSettings = TwilioSettings()
    dialer: DialerSettings = DialerSettings()
    flow: str = Field(default="demo_booking", min_length=1)  # a name in config/flows/ or a path
    # ISO country callers' spoken phone numbers and numeric dates ("5/1") are read in; a flow's
    # own `region` wins; "" = the country of the flow's time zone (Europe/London: GB)
    region: str = Field(default="", pattern=r"^([A-Z]{2})?$")
    calendars: FrozenMap[CalendarSettings] = FrozenMap(
        {"main": CalendarSettings(provider="local", timezone="America/New_York")}
    )
    booking_actions: FrozenMap[BookingActionSettings] = FrozenMap(
        {"demo": BookingActionSettings(calendars=("main",))}
    )
    email: EmailSettings = EmailSettings()
    webhooks: FrozenMap[WebhookSettings] = FrozenMap({})
    call_webhook: CallWebhookSettings = CallWebhookSettings()
    turn: TurnSettings = TurnSettings()
    log: LogSettings = LogSettings()
    recording: RecordingSettings = RecordingSettings()
    tracing: TracingSettings = TracingSettings()

    @model_validator(mode="after")
    def _actions_name_known_calendars(self) -> Settings:
        problems = [
            (("booking_actions", action, "calendars"), f"no calendar named {name!r} "
             f"(defined: {', '.join(sorted(self.calendars)) or 'none'})")
            for action, settings in self.booking_actions.items()
            for name in settings.calendars
            if name not in self.calendars
        ]
        if problems:
            raise FieldProblems(problems)
        return self


# Secret environment variables; each is a ``Secrets`` field of the same name in lower case.
SECRET_ENV_NAMES = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "DEEPGRAM_API_KEY",
    "OPENAI_API_KEY",
    "ELEVENLABS_API_KEY",
    "CALCOM_API_KEY",
    "GHL_API_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_OAUTH_REFRESH_TOKEN",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "MS_CLIENT_SECRET",
    "CALDAV_PASSWORD",
    "SLOTLINE_WEBHOOK_SECRET",
    "SLOTLINE_API_TOKEN",
    "SMTP_PASSWORD",
)


class Secrets(_Section):
    """Credentials, only ever read from the environment. ``None`` = not set."""

    twilio_account_sid: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    deepgram_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    elevenlabs_api_key: SecretStr | None = None
    calcom_api_key: SecretStr | None = None
    ghl_api_token: SecretStr | None = None
    google_application_credentials: SecretStr | None = None  # a service-account file path
    google_oauth_refresh_token: SecretStr | None = None
    google_oauth_client_secret: SecretStr | None = None  # with the refresh token
    ms_client_secret: SecretStr | None = None
    caldav_password: SecretStr | None = None
    slotline_webhook_secret: SecretStr | None = None  # HMAC key for the webhook calendar
    slotline_api_token: SecretStr | None = None  # bearer token for /api/*
    smtp_password: SecretStr | None = None  # e-mail confirmations
