"""Slotline: a real-time voice agent server that answers and places phone calls and books
appointments during the conversation.

One import root: the server is ``slotline.agent``, the vendor adapters and emulators
``slotline.providers``, the audio codecs ``slotline.audio``.

The names below are the API for embedding Slotline in a Python program (README, "Embedding
Slotline"): ``load_settings``, ``build_app`` and ``run``; ``register_stt``, ``register_tts``
and ``register_calendar`` for providers of your own (or entry points in the groups
``slotline.stt``, ``slotline.tts``, ``slotline.calendars``); the Protocols such a provider
implements. They are imported on first use, so ``import slotline`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("slotline")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from slotline.agent.config import InvalidConfig
    from slotline.agent.config_models import (
        CalendarSettings,
        Secrets,
        Settings,
        SttSettings,
        TtsSettings,
    )
    from slotline.agent.server.embedding import (
        build_app,
        configure_logging,
        load_secrets,
        load_settings,
        run,
    )
    from slotline.agent.server.registry import (
        CalendarFactory,
        ProviderContext,
        SttFactory,
        TtsFactory,
        register_calendar,
        register_stt,
        register_tts,
    )
    from slotline.providers.base import (
        AsyncResource,
        AudioChunk,
        SpeechHints,
        SpeechToText,
        SttStream,
        TextToSpeech,
        Transcript,
    )
    from slotline.providers.calendars.base import (
        Attendee,
        BookingRequest,
        BusyInterval,
        CalendarProvider,
        ProviderBooking,
    )
    from slotline.providers.errors import (
        ConfigError,
        ProviderAuthError,
        ProviderError,
        ProviderTimeout,
        SlotlineError,
        SlotTaken,
    )

_HOMES = {
    "slotline.agent.server.embedding": (
        "build_app", "configure_logging", "load_secrets", "load_settings", "run",
    ),
    "slotline.agent.server.registry": (
        "CalendarFactory", "ProviderContext", "SttFactory", "TtsFactory", "register_calendar",
        "register_stt", "register_tts",
    ),
    "slotline.agent.config": ("InvalidConfig",),
    "slotline.agent.config_models": (
        "CalendarSettings", "Secrets", "Settings", "SttSettings", "TtsSettings",
    ),
    "slotline.providers.base": (
        "AsyncResource", "AudioChunk", "SpeechHints", "SpeechToText", "SttStream",
        "TextToSpeech", "Transcript",
    ),
    "slotline.providers.calendars.base": (
        "Attendee", "BookingRequest", "BusyInterval", "CalendarProvider", "ProviderBooking",
    ),
    "slotline.providers.errors": (
        "ConfigError", "ProviderAuthError", "ProviderError", "ProviderTimeout", "SlotTaken",
        "SlotlineError",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "__version__",
    "AsyncResource",
    "Attendee",
    "AudioChunk",
    "BookingRequest",
    "BusyInterval",
    "CalendarFactory",
    "CalendarProvider",
    "CalendarSettings",
    "ConfigError",
    "InvalidConfig",
    "ProviderAuthError",
    "ProviderBooking",
    "ProviderContext",
    "ProviderError",
    "ProviderTimeout",
    "Secrets",
    "Settings",
    "SlotTaken",
    "SlotlineError",
    "SpeechHints",
    "SpeechToText",
    "SttFactory",
    "SttSettings",
    "SttStream",
    "TextToSpeech",
    "Transcript",
    "TtsFactory",
    "TtsSettings",
    "build_app",
    "configure_logging",
    "load_secrets",
    "load_settings",
    "register_calendar",
    "register_stt",
    "register_tts",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'slotline' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME_OF})
