"""Settings → the providers, store and services a call uses. The one place that knows which
vendor module implements which setting, and where flow files are found."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast

import aiohttp
from pydantic import SecretStr

from slotline.agent.booking.caller_bookings import BuiltInActions
from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service import BookingService
from slotline.agent.booking.vendor_fields import check_flows
from slotline.agent.call import smart_turn
from slotline.agent.call.calllog import CallLog
from slotline.agent.call.errors import ErrorReporter
from slotline.agent.call.frames import TurnEndModel
from slotline.agent.call.persist import fail_abandoned_calls
from slotline.agent.call.responder import Action, CallEvent, Responder
from slotline.agent.call.session import SessionDeps
from slotline.agent.call.summary import Summarizer
from slotline.agent.call.telephony import TwilioCallControl
from slotline.agent.call.webhook import build_call_end, fan_out
from slotline.agent.config import Secrets, Settings
from slotline.agent.dialer.engine import Dialer, DialerConfig
from slotline.agent.flow import Flow, FlowEngine, FlowResponder, load_flow
from slotline.agent.flow.webhooks import HttpWebhooks
from slotline.agent.notify.setup import build_notifications
from slotline.agent.server.calendars import build_calendars
from slotline.agent.server.metrics import Metrics
from slotline.agent.server.recording_store import Recordings
from slotline.agent.server.registry import STT, TTS, ProviderContext
from slotline.agent.server.stream_token import StreamTokens
from slotline.agent.store import Store
from slotline.agent.waitlist import Waitlist, WaitlistAction, WaitlistEvents
from slotline.audio.vad import SileroVad, Vad, VadUnavailable, WebRtcVad
from slotline.providers.base import AsyncResource, SpeechToText, TextToSpeech
from slotline.providers.errors import ConfigError, ProviderError
from slotline.providers.telephony.twilio_media import Start
from slotline.providers.telephony.twilio_rest import TwilioRest

if TYPE_CHECKING:
    from slotline.providers.llm.openai import OpenAIChatModel

log = logging.getLogger(__name__)

_SOURCE = "settings"
_FLOW_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# config/flows: the checkout's (through the slotline/ links) or the installed package's.
_BUNDLED_FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows"


def flow_path(name: str, config_path: Path | None = None) -> Path:
    """``flow`` setting → file: a path as given, else NAME.yaml in the flows/ folder beside
    the config file, else in config/flows (inside the package once installed)/."""
    given = Path(name)
    if given.suffix in {".yaml", ".yml"}:
        if given.is_file():
            return given
        raise ConfigError(_SOURCE, "flow", f"no flow file {name!r}")
    folders = ([config_path.parent / "flows"] if config_path else []) + [_BUNDLED_FLOWS]
    for folder in folders:
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(f) for f in folders)
    raise ConfigError(_SOURCE, "flow", f"no flow named {name!r} (looked in {searched})")


def _secret(value: SecretStr | None, env_name: str, key: str) -> str:
    if value is None:
        raise ConfigError("environment", env_name, f"not set, and {key} needs it")
    return value.get_secret_value()


def _stt(
    settings: Settings, secrets: Secrets, metrics: Metrics, http: aiohttp.ClientSession
) -> tuple[SpeechToText, AsyncResource | None]:
    name = settings.stt.provider
    if name not in STT.builtin:  # a plug-in (agent.server.registry)
        stt = STT.build(ProviderContext(name, settings.stt, secrets, http), "stt.provider")
        return stt, lifecycle_of(stt)
    if name == "deepgram":
        from slotline.providers.stt.deepgram import DeepgramSpeechToText

        key = _secret(secrets.deepgram_api_key, "DEEPGRAM_API_KEY", "stt.provider: deepgram")
        deepgram = DeepgramSpeechToText(
            key,
            base_url=settings.stt.base_url or "wss://api.deepgram.com",
            model=settings.stt.model or "nova-3",
            # opt-in until their effect on accuracy can be shown (README)
            keyterms=str(settings.stt.options.get("keyterms", False)).lower()
            in ("true", "1", "yes", "on"),
            on_error=ErrorReporter(metrics),  # to the call's log too: agent.call.errors
        )
        return deepgram, _CloseOnly(deepgram)
    from slotline.providers.stt.local import LocalSpeechToText

    local = LocalSpeechToText()
    return local, local


def _tts(
    settings: Settings, secrets: Secrets, http: aiohttp.ClientSession
) -> tuple[TextToSpeech, AsyncResource | None]:
    name = settings.tts.provider
    if name not in TTS.builtin:  # a plug-in (agent.server.registry)
        tts = TTS.build(ProviderContext(name, settings.tts, secrets, http), "tts.provider")
        return tts, lifecycle_of(tts)
    if name == "elevenlabs":
        from slotline.providers.tts.elevenlabs import (
            DEFAULT_BASE_URL,
            DEFAULT_MODEL_ID,
            ElevenLabsTts,
        )

        key = _secret(secrets.elevenlabs_api_key, "ELEVENLABS_API_KEY",
                      "tts.provider: elevenlabs")
        if not settings.tts.voice_id:
            raise ConfigError(_SOURCE, "tts.voice_id", "required for tts.provider: elevenlabs")
        eleven = ElevenLabsTts(
            key,
            voice_id=settings.tts.voice_id,
            base_url=settings.tts.base_url or DEFAULT_BASE_URL,
            model_id=settings.tts.model_id or DEFAULT_MODEL_ID,
        )
        return eleven, eleven
    return _local_tts(settings), None


def _local_tts(settings: Settings) -> TextToSpeech:
    from slotline.providers.tts.local import LocalTts

    voice = settings.tts.voice_id if settings.tts.provider == "local" else ""
    try:
        return LocalTts(voice) if voice else LocalTts()
    except ProviderError as exc:
        raise ConfigError(_SOURCE, "tts.voice_id", exc.message) from exc


def lifecycle_of(provider: object) -> AsyncResource | None:
    """A plug-in's ``start()``/``aclose()`` run with the server; ``aclose()`` alone: closed."""
    if callable(getattr(provider, "start", None)) and callable(getattr(provider, "aclose", None)):
        return cast(AsyncResource, provider)
    if callable(getattr(provider, "aclose", None)):
        return _CloseOnly(provider)
    return None


class _CloseOnly:
    """A provider that needs no start-up, only closing with the server."""

    def __init__(self, provider: object) -> None:
        self._provider = provider

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        close = getattr(self._provider, "aclose", None)
        if close is not None:
            await close()


class _StoreResource:
    """Closes the store with the server (it is opened before the app is built)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def start(self) -> None:
        await self._store.ping()
        await fail_abandoned_calls(self._store)  # calls of a process that died (kill -9)

    async def aclose(self) -> None:
        await self._store.close()


class _HttpSession:
    """One aiohttp session for the server's REST calls (custom actions), closed with it."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self.session is None:  # first use is inside the running loop
            self.session = aiohttp.ClientSession()
        return self.session

    async def start(self) -> None:
        self.get()

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def _twilio_rest(
    settings: Settings, secrets: Secrets, session: aiohttp.ClientSession
) -> TwilioRest | None:
    """The REST client for call control (SMS, transfer) when the Twilio secrets are set."""
    if secrets.twilio_account_sid is None or secrets.twilio_auth_token is None:
        return None
    return TwilioRest(
        secrets.twilio_account_sid.get_secret_value(),
        secrets.twilio_auth_token.get_secret_value(),
        base_url=settings.twilio.base_url,
        session=session,
    )


class _FlowCall:
    """A call's ``FlowResponder``; when the call ends, its booking runner hears what the flow
    collected (an e-mail address asked for once booked still gets its confirmation)."""

    def __init__(
        self, responder: FlowResponder, runner: ServiceBookingRunner, metrics: Metrics
    ) -> None:
        self._responder = responder
        self._runner = runner
        self._metrics = metrics

    def handle(self, event: CallEvent) -> AsyncIterator[Action]:
        return self._responder.handle(event)

    @property
    def flow(self) -> str:
        return self._responder.flow

    @property
    def node(self) -> str:
        return self._responder.node

    @property
    def variables(self) -> Mapping[str, str]:
        return self._responder.variables

    @property
    def path(self) -> Sequence[str]:
        """``ReportsPath``: the nodes the engine entered, in order."""
        return self._responder.path

    @property
    def can_anticipate(self) -> bool:
        return self._responder.can_anticipate

    def anticipate(self, text: str) -> bool:
        return self._responder.anticipate(text)

    def forget_anticipation(self) -> None:
        self._responder.forget_anticipation()

    def static_prompts(self) -> tuple[str, ...]:
        """The flow's fixed sentences, synthesised ahead of time into the prompt cache."""
        return self._responder.static_prompts()

    def model_use(self) -> Mapping[str, int]:
        """``ReportsModelUse``: the flow's model counts, none when no model is configured
        (``can_anticipate`` is exactly that)."""
        if not self._responder.can_anticipate:
            return {}
        return self._responder.llm_stats.as_dict()

    def bookings_made(self) -> tuple[str, ...]:
        """``ReportsBookings``: every booking the runner wrote (all of a collective's)."""
        return self._runner.booking_ids

    async def aclose(self) -> None:
        await self._responder.aclose()
        await self._runner.call_ended(self._responder.variables)
        stats = self._responder.llm_stats
        self._metrics.flow_turns.inc("skipped", stats.turns_without_llm)
        self._metrics.flow_turns.inc("used", stats.llm_turns)


def _llm(settings: Settings, secrets: Secrets) -> OpenAIChatModel | None:
    """The flow's model for ``llm.provider: openai`` (any OpenAI-compatible server). Imported
    only then: the SDK takes ~0.7 s to import, which the offline default need not pay."""
    if settings.llm.provider != "openai":
        return None
    from slotline.providers.llm.openai import OpenAIChatModel
    key = _secret(secrets.openai_api_key, "OPENAI_API_KEY",
                  "llm.provider: openai (any value for a server that needs none)")
    return OpenAIChatModel(
        key,
        base_url=settings.llm.base_url or "https://api.openai.com/v1",
        model=settings.llm.model or "gpt-4o-mini",
    )


def turn_model_factory(mode: str) -> Callable[[], TurnEndModel] | None:
    """Each call's end-of-turn model per ``turn.smart_turn`` (None: none). The process's model
    loads here, at start-up: ``on`` without the extra fails now, naming what to install."""
    if mode == "off" or (mode == "auto" and not smart_turn.available()):
        return None
    smart_turn.load()
    return smart_turn.SmartTurn


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def build_deps(
    settings: Settings, secrets: Secrets | None = None, *, config_path: Path | None = None
) -> SessionDeps:
    """Construct every provider once for the process (models load here, not per call)."""
    turn = settings.turn
    if turn.vad == "silero":
        try:
            SileroVad()  # fail at start-up, with a clear message, if the model is missing
        except VadUnavailable as exc:
            raise ConfigError(_SOURCE, "turn.vad", str(exc)) from exc

        def make_vad() -> Vad:
            return SileroVad()
    else:
        aggressiveness = turn.vad_aggressiveness

        def make_vad() -> Vad:
            return WebRtcVad(aggressiveness)

    actions = tuple(settings.booking_actions)
    flows: dict[str, Flow] = {}

    def flow_named(name: str) -> Flow:
        if name not in flows:
            flows[name] = load_flow(flow_path(name, config_path), booking_actions=actions)
        return flows[name]

    default_flow = flow_named(settings.flow)  # an invalid default flow stops start-up
    secrets = secrets if secrets is not None else Secrets()
    metrics = Metrics()
    http = _HttpSession()
    try:
        stt, stt_resource = _stt(settings, secrets, metrics, http.get())
        tts, tts_resource = _tts(settings, secrets, http.get())
    except BaseException:
        await http.aclose()
        raise
    try:  # a missing extra (openai, asyncpg) or an unreachable database stops start-up here
        llm = _llm(settings, secrets)
        store = await Store.open(settings.store.url)
    except BaseException:
        await http.aclose()
        raise
    try:
        calendars = build_calendars(settings, secrets, http.get(), flows=(default_flow,))
        booking = BookingService.from_settings(
            settings, store, calendars.by_name, metrics=metrics
        )
        notifications = build_notifications(settings, secrets, store, http.get())
        rest = _twilio_rest(settings, secrets, http.get())
    except (ConfigError, ValueError) as exc:
        await http.aclose()
        await store.close()
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(_SOURCE, "booking_actions", str(exc)) from exc
    calendar_tz = next(iter(settings.calendars.values())).timezone
    webhook_secret = (
        secrets.slotline_webhook_secret.get_secret_value()
        if secrets.slotline_webhook_secret is not None else None
    )
    notices = notifications.notices if notifications is not None else None
    report = ErrorReporter(metrics)  # a failure goes to its call's log and the metric

    def make_responder(start: Start) -> Responder:
        requested = start.custom_parameters.get("flow", "")
        flow = default_flow
        if start.custom_parameters.get("mode") == "voicemail":
            flow = voicemail_flow(start.custom_parameters.get("voicemail_message", ""))
        elif requested and requested != settings.flow:
            if not _FLOW_NAME.fullmatch(requested):  # a name from config/flows, never a path
                log.warning("call_sid=%s bad flow parameter; using %r", start.call_sid,
                            settings.flow)
                requested = settings.flow
            try:
                asked = flow_named(requested)
                # a vendor field it cannot fill (agent.booking.vendor_fields): not this flow
                check_flows((asked,), settings, calendars.by_name)
                flow = asked
            except ConfigError as exc:  # a bad <Parameter>: the call still gets the default
                log.warning("call_sid=%s asked for flow %r: %s; using %r", start.call_sid,
                            requested, exc, settings.flow)
        # the business's zone; the caller's own is detected when the call starts (a
        # user_timezone parameter, else the caller's number) and may be said during it:
        # agent.flow.caller_zone, agent.flow.zone_steps
        business_tz = flow.timezone or calendar_tz
        engine = FlowEngine(flow, now=_utc_now, timezone=business_tz, use_llm=llm is not None,
                            region=settings.region)
        caller_number = start.custom_parameters.get("user_phone", "")
        runner = ServiceBookingRunner(booking, call_sid=start.call_sid, caller_tz=business_tz,
                                      clock=_utc_now, notices=notices,
                                      caller_phone=caller_number, on_error=report)
        # find_booking / pick_booking are answered in-process (agent.booking.caller_bookings),
        # and waitlist (agent.waitlist)
        webhooks = WaitlistAction(waitlist, BuiltInActions(runner.bookings, HttpWebhooks(
            settings.webhooks, call_sid=start.call_sid, secret=webhook_secret,
            session=http.get())), call_sid=start.call_sid, caller_phone=caller_number)
        control = None
        if rest is not None:
            control = TwilioCallControl(
                rest, call_sid=start.call_sid, from_number=settings.twilio.from_number,
                caller_number=caller_number,
            )
        responder = FlowResponder(
            engine, booking=runner, webhooks=webhooks, control=control, llm=llm,
            on_provider_error=report, opt_out=opt_out,
        )
        return _FlowCall(responder, runner, metrics)

    opt_out = StoreOptOut(store)
    waitlist = Waitlist(store, WaitlistEvents.from_settings(settings, secrets))
    recordings = Recordings(settings.recording, store)  # retention runs even when off
    dialer = Dialer(store, rest, DialerConfig(
        from_number=settings.twilio.from_number,
        callback_base=_callback_base(settings),
        stream_tokens=StreamTokens.for_auth_token(secrets.twilio_auth_token.get_secret_value())
        if secrets.twilio_auth_token is not None else None,
    ), flow_exists=lambda name: _flow_known(flow_named, name))
    # after the call: outcome, summary and the end-of-call webhook (agent.call.webhook)
    call_end, call_webhooks = build_call_end(
        store, settings.call_webhook, Summarizer(llm), flows, secret=webhook_secret,
        session=http.get, recordings_at=_api_base(settings) if settings.recording.enabled else None)
    return SessionDeps(
        stt=stt,
        tts=tts,
        make_vad=make_vad,
        make_responder=make_responder,
        call_log=CallLog(),
        metrics=metrics,
        resources=tuple(
            r for r in (metrics, stt_resource, tts_resource, llm, _StoreResource(store), http,
                        calendars, notifications, dialer, call_webhooks, recordings)
            if r is not None
        ),
        store=store,
        # a cloud voice that fails mid-call hands over to the offline one
        fallback_tts=None if settings.tts.provider == "local" else _local_tts(settings),
        # the goodbye heard, the call is ended through Twilio (its media stream then stops)
        end_call=rest.hangup if rest is not None else None,
        on_ended=fan_out(dialer.on_session_ended, call_end),
        dialer=dialer,
        recordings=recordings,
        make_turn_model=turn_model_factory(settings.turn.smart_turn),
    )


def _api_base(settings: Settings) -> str:
    """This server's address as callers of its API know it ("": unknown, paths only)."""
    return f"https://{settings.server.public_url}" if settings.server.public_url else ""


def _callback_base(settings: Settings) -> str:
    """Where Twilio reaches this server's ``/twilio/*`` for outbound calls ("" = learnt once
    the server is bound, see ``Dialer.serving_at``)."""
    if settings.dialer.callback_url:
        return settings.dialer.callback_url
    if settings.server.public_url:
        return f"https://{settings.server.public_url}"
    return ""


def _flow_known(flow_named: Callable[[str], Flow], name: str) -> bool:
    if not _FLOW_NAME.fullmatch(name):
        return False
    try:
        flow_named(name)
    except ConfigError:
        return False
    return True


def voicemail_flow(message: str) -> Flow:
    """The flow of a voicemail stream (AMD heard the beep): say the message, hang up."""
    text = message.strip() or "Sorry we missed you. We'll try again another time. Goodbye."
    return Flow.model_validate({
        "name": "voicemail",
        "start": "leave",
        "nodes": {"leave": {"type": "end_call", "say": text, "reason": "voicemail"}},
    })


class StoreOptOut:
    """The do-not-call list a flow adds to when the callee asks (``OptOutList``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, phone: str, *, call_sid: str) -> None:
        await self._store.dnc.add([phone], source="voice", call_sid=call_sid)
