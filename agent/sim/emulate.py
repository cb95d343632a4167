"""``slotline emulate``: the provider emulators on loopback, for offline development.

Starts the chosen emulators (default: all) with demo state, prints each one's URL and the
environment lines that point Slotline at it, optionally writes those lines to an env file, and
serves until Ctrl-C::

    slotline emulate                              # all of them, on free ports
    slotline emulate deepgram openai --base-port 9001 --env-file .env.emulated
    set -a; . ./.env.emulated; set +a; slotline serve

Every emulator speaks its vendor's real protocol (``providers/emulators``). Each calendar
emulator becomes a calendar of its own name (``calendars.calcom``, ``calendars.google``, ...),
and the ``demo`` booking action pools the calendar emulators that were started. With
``--base-port P`` an emulator listens on ``P + its index in EMULATORS`` (the same port whichever
subset runs); without it, on a free port. ``--profile cloud`` adds typical vendor delays.

The keys printed are the emulators' own, invented here: they are not secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from slotline.providers.errors import ConfigError

Profile = Literal["instant", "cloud"]
EMULATORS = ("deepgram", "openai", "elevenlabs", "twilio", "calcom", "ghl", "google", "graph",
             "webhook")
CALENDAR_TIMEZONE = "America/New_York"
VOICE_ID = "emulated-voice"
CALCOM_EVENT_TYPE_ID = 1
GHL_CALENDAR_ID = "cal-demo"
GHL_LOCATION_ID = "loc-demo"
GOOGLE_ACCOUNT = "slotline@emulated-project.iam.gserviceaccount.com"
GOOGLE_OWNER = "owner@slotline.example"  # the Workspace user the service account acts as
TWILIO_NUMBER = "+15005550001"

# Keys the emulators accept; they only ever travel over loopback.
KEYS: Mapping[str, str] = {
    "DEEPGRAM_API_KEY": "emulated-deepgram-key",
    "OPENAI_API_KEY": "sk-emulated",
    "ELEVENLABS_API_KEY": "emulated-elevenlabs-key",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "emulated-twilio-token",
    "CALCOM_API_KEY": "cal_emulated",
    "GHL_API_TOKEN": "emulated-ghl-token",
    "MS_CLIENT_SECRET": "emulated-client-secret",
    "SLOTLINE_WEBHOOK_SECRET": "whsec_emulated",
}

# ``--profile cloud`` for the REST vendors: (latency_ms, jitter_ms) of one request. Typical round
# trips to a hosted API, chosen by hand (not measured); the voice vendors use their emulators'
# own cloud profiles.
_REST_CLOUD_MS: Mapping[str, tuple[float, float]] = {
    "twilio": (120.0, 40.0), "calcom": (180.0, 60.0), "ghl": (220.0, 80.0),
    "google": (150.0, 50.0), "graph": (180.0, 60.0), "webhook": (60.0, 20.0),
}


@dataclass(frozen=True, slots=True)
class Emulated:
    """One running emulator: where it is and the environment that points Slotline at it."""

    name: str
    url: str  # what the provider's ``base_url`` setting gets
    env: Mapping[str, str]
    emulator: Any  # the running emulator (tests and scripts may inspect it)
    note: str = ""
    calendar: str = ""  # the calendar name it serves as, if it is a calendar


@dataclass(frozen=True, slots=True)
class _Options:
    name: str
    host: str
    port: int  # 0 = any free port
    cloud: bool
    scratch: Path  # files the emulators need (the Google key)

    def rest(self) -> dict[str, Any]:
        latency_ms, jitter_ms = _REST_CLOUD_MS[self.name] if self.cloud else (0.0, 0.0)
        return {"host": self.host, "port": self.port, "latency_ms": latency_ms,
                "jitter_ms": jitter_ms}


def _calendar_env(name: str, provider: str, url: str, **keys: str) -> dict[str, str]:
    prefix = f"SLOTLINE_CALENDARS__{name.upper()}__"
    settings = {"PROVIDER": provider, "TIMEZONE": CALENDAR_TIMEZONE, "BASE_URL": url, **keys}
    return {prefix + key.upper(): value for key, value in settings.items()}


def _secrets(*names: str) -> dict[str, str]:
    return {name: KEYS[name] for name in names}


async def _deepgram(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.deepgram import DeepgramEmulator

    key = KEYS["DEEPGRAM_API_KEY"]
    emulator = (DeepgramEmulator.cloud(api_key=key, host=o.host, port=o.port) if o.cloud
                else DeepgramEmulator(api_key=key, host=o.host, port=o.port))
    await stack.enter_async_context(emulator)
    env = {"SLOTLINE_STT__PROVIDER": "deepgram", "SLOTLINE_STT__BASE_URL": emulator.url,
           **_secrets("DEEPGRAM_API_KEY")}
    return Emulated(o.name, emulator.url, env, emulator, "live STT (offline recogniser inside)")


async def _openai(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.openai import LATENCY_PROFILES, OpenAIEmulator

    emulator = OpenAIEmulator(api_key=KEYS["OPENAI_API_KEY"], host=o.host, port=o.port,
                              latency=LATENCY_PROFILES["cloud" if o.cloud else "instant"])
    await stack.enter_async_context(emulator)
    env = {"SLOTLINE_LLM__PROVIDER": "openai", "SLOTLINE_LLM__BASE_URL": emulator.base_url,
           "SLOTLINE_LLM__MODEL": "emulated-chat", **_secrets("OPENAI_API_KEY")}
    return Emulated(o.name, emulator.base_url, env, emulator, "chat completions (deterministic)")


async def _elevenlabs(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.elevenlabs import LATENCY_PROFILES, ElevenLabsEmulator

    emulator = ElevenLabsEmulator(api_key=KEYS["ELEVENLABS_API_KEY"], host=o.host, port=o.port,
                                  latency=LATENCY_PROFILES["cloud" if o.cloud else "none"])
    await stack.enter_async_context(emulator)
    env = {"SLOTLINE_TTS__PROVIDER": "elevenlabs", "SLOTLINE_TTS__BASE_URL": emulator.base_url,
           "SLOTLINE_TTS__VOICE_ID": VOICE_ID, **_secrets("ELEVENLABS_API_KEY")}
    return Emulated(o.name, emulator.base_url, env, emulator, "streaming TTS (espeak inside)")


async def _twilio(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.twilio import TwilioEmulator

    emulator = TwilioEmulator(KEYS["TWILIO_ACCOUNT_SID"], KEYS["TWILIO_AUTH_TOKEN"], **o.rest())
    await stack.enter_async_context(emulator)
    env = {"SLOTLINE_TWILIO__BASE_URL": emulator.base_url,
           "SLOTLINE_TWILIO__FROM_NUMBER": TWILIO_NUMBER,
           **_secrets("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")}
    note = ("REST: SMS and call updates. TWILIO_AUTH_TOKEN also makes the server check "
            "X-Twilio-Signature on /twilio/* webhooks")
    return Emulated(o.name, emulator.base_url, env, emulator, note)


async def _calcom(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.calcom import CalcomEmulator
    from slotline.providers.emulators.calcom_rules import EventType

    event = EventType(CALCOM_EVENT_TYPE_ID, length_min=30, timezone=CALENDAR_TIMEZONE,
                      slug="demo")  # weekdays 09:00-17:00
    emulator = CalcomEmulator(KEYS["CALCOM_API_KEY"], [event], **o.rest())
    await stack.enter_async_context(emulator)
    env = {**_calendar_env("calcom", "calcom", emulator.base_url,
                           event_type_id=str(CALCOM_EVENT_TYPE_ID)),
           **_secrets("CALCOM_API_KEY")}
    note = f"event type {CALCOM_EVENT_TYPE_ID}: 30 min, weekdays 09-17 New York"
    return Emulated(o.name, emulator.base_url, env, emulator, note, "calcom")


async def _ghl(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.ghl import GhlCalendarRules, GhlEmulator

    calendar = GhlCalendarRules(GHL_CALENDAR_ID, timezone=CALENDAR_TIMEZONE)
    emulator = GhlEmulator(token=KEYS["GHL_API_TOKEN"], location_id=GHL_LOCATION_ID,
                           calendars=(calendar,), **o.rest())
    await stack.enter_async_context(emulator)
    env = {**_calendar_env("ghl", "ghl", emulator.base_url, calendar_id=GHL_CALENDAR_ID,
                           location_id=GHL_LOCATION_ID),
           **_secrets("GHL_API_TOKEN")}
    note = f"calendar {GHL_CALENDAR_ID}: 30 min slots, weekdays 09-17 New York"
    return Emulated(o.name, emulator.base_url, env, emulator, note, "ghl")


async def _google(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.google_calendar import GoogleCalendarEmulator

    emulator = GoogleCalendarEmulator(calendars=("primary",), **o.rest())
    await stack.enter_async_context(emulator)
    key_file, public_pem = _google_key(o.scratch / "google-service-account.json",
                                       emulator.token_url)
    emulator.add_service_account(GOOGLE_ACCOUNT, public_pem, key_id="emulated-key")
    env = {**_calendar_env("google", "google", emulator.base_url, calendar_id="primary",
                           token_url=emulator.token_url, subject=GOOGLE_OWNER),
           "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    note = f"calendar primary; service-account key {key_file} (gone when this stops)"
    return Emulated(o.name, emulator.base_url, env, emulator, note, "google")


def _google_key(path: Path, token_url: str) -> tuple[Path, str]:
    """A throwaway service-account key file (what the Cloud console downloads)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "emulated-project",
            "private_key_id": "emulated-key", "private_key": private_pem,
            "client_email": GOOGLE_ACCOUNT, "client_id": "1", "token_uri": token_url}
    path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    path.chmod(0o600)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return path, public_pem


async def _graph(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.graph import CLIENT_ID, MAILBOX, TENANT_ID, GraphEmulator

    emulator = GraphEmulator(client_secret=KEYS["MS_CLIENT_SECRET"], **o.rest())
    await stack.enter_async_context(emulator)
    env = {**_calendar_env("outlook", "outlook", emulator.base_url,
                           token_url=emulator.token_url, tenant_id=TENANT_ID,
                           client_id=CLIENT_ID, user=MAILBOX),
           **_secrets("MS_CLIENT_SECRET")}
    note = f"Microsoft Graph + identity platform; mailbox {MAILBOX}"
    return Emulated(o.name, emulator.base_url, env, emulator, note, "outlook")


async def _webhook(stack: AsyncExitStack, o: _Options) -> Emulated:
    from slotline.providers.emulators.webhook_calendar import WebhookCalendarEmulator

    emulator = WebhookCalendarEmulator(KEYS["SLOTLINE_WEBHOOK_SECRET"], **o.rest())
    await stack.enter_async_context(emulator)
    env = {**_calendar_env("webhook", "webhook", emulator.base_url),
           **_secrets("SLOTLINE_WEBHOOK_SECRET")}
    note = "the webhook calendar contract's reference server (signed requests)"
    return Emulated(o.name, emulator.base_url, env, emulator, note, "webhook")


_STARTERS: Mapping[str, Callable[[AsyncExitStack, _Options], Awaitable[Emulated]]] = {
    "deepgram": _deepgram, "openai": _openai, "elevenlabs": _elevenlabs, "twilio": _twilio,
    "calcom": _calcom, "ghl": _ghl, "google": _google, "graph": _graph, "webhook": _webhook,
}


def chosen(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` in the canonical order, duplicates dropped; none = all. ``ConfigError`` for
    a name that is not an emulator."""
    unknown = [name for name in names if name not in EMULATORS]
    if unknown:
        raise ConfigError("slotline emulate", unknown[0],
                          f"no such emulator (choose from {', '.join(EMULATORS)})")
    return tuple(name for name in EMULATORS if name in names) if names else EMULATORS


@asynccontextmanager
async def run_emulators(
    names: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    base_port: int | None = None,
    profile: Profile = "instant",
) -> AsyncIterator[list[Emulated]]:
    """Start the emulators ``names`` (none = all) and yield them; all stop on exit.
    ``OSError`` when a port is taken; ``ConfigError`` for an unknown name or profile."""
    if profile not in ("instant", "cloud"):
        raise ConfigError("slotline emulate", "--profile", f"{profile!r}: instant or cloud")
    selected = chosen(names)
    with tempfile.TemporaryDirectory(prefix="slotline-emulate-") as scratch:
        async with AsyncExitStack() as stack:
            running: list[Emulated] = []
            for name in selected:
                port = 0 if base_port is None else base_port + EMULATORS.index(name)
                options = _Options(name, host, port, profile == "cloud", Path(scratch))
                running.append(await _STARTERS[name](stack, options))
            yield running


def pool_env(running: Sequence[Emulated]) -> dict[str, str]:
    """The ``demo`` booking action pooling every emulated calendar (none: nothing)."""
    calendars = [item.calendar for item in running if item.calendar]
    return {"SLOTLINE_BOOKING_ACTIONS__DEMO__CALENDARS": ",".join(calendars)} if calendars else {}


def combined_env(running: Sequence[Emulated]) -> dict[str, str]:
    """Every emulator's environment at once, plus the booking pool."""
    env: dict[str, str] = {}
    for item in running:
        env.update(item.env)
    return {**env, **pool_env(running)}


def env_line(env: Mapping[str, str]) -> str:
    return " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())


def report(running: Sequence[Emulated], out: TextIO, *, host: str, profile: Profile) -> None:
    """Each emulator's URL, what it holds, and its environment line."""
    print(f"slotline emulate: {len(running)} emulators on {host}, profile {profile}. "
          "Ctrl-C stops them.\n", file=out)
    width = max(len(item.name) for item in running) if running else 0
    for item in running:
        print(f"{item.name:<{width}}  {item.url}", file=out)
        if item.note:
            print(f"  # {item.note}", file=out)
        print(f"  {env_line(item.env)}", file=out)
    pool = pool_env(running)
    if pool:
        print(f"{'booking':<{width}}  the demo action books on the emulated calendars", file=out)
        print(f"  {env_line(pool)}", file=out)
    out.flush()


def write_env_file(path: Path, running: Sequence[Emulated]) -> None:
    lines = ["# slotline emulate: load with `set -a; . FILE; set +a` (valid while it runs)"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in combined_env(running).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


# ---- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"emulators to start (default: all): {', '.join(EMULATORS)}")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--base-port", type=int, default=None,
                        help="emulator i listens on BASE_PORT + i (default: free ports)")
    parser.add_argument("--profile", default="instant", choices=("instant", "cloud"),
                        help="vendor latency: instant (none) or cloud (typical hosted delays)")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="also write the environment lines to this file")


async def main(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (SIGINT) or SIGTERM; 0 on a clean stop, 2 when nothing could start."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        return await serve(args, out=sys.stdout, stop=stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def serve(
    args: argparse.Namespace, *, out: TextIO, stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> int:
    """``main`` without the signals: serve until ``stop`` is set; ``ready`` is set once the
    emulators listen and their environment is printed (and written)."""
    try:
        async with run_emulators(args.names, host=args.host, base_port=args.base_port,
                                 profile=args.profile) as running:
            report(running, out, host=args.host, profile=args.profile)
            if args.env_file is not None:
                write_env_file(args.env_file, running)
                print(f"\nwrote {args.env_file}", file=out, flush=True)
            if ready is not None:
                ready.set()
            await stop.wait()
    except ConfigError as exc:
        print(f"slotline emulate: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a port in use, an unwritable env file
        print(f"slotline emulate: {exc}", file=sys.stderr)
        return 2
    print("slotline emulate: stopped", file=out, flush=True)
    return 0
