"""Provider plug-ins: speech-to-text, text-to-speech and calendar providers chosen by name.

A setting names its provider (``stt.provider``, ``tts.provider``,
``calendars.<calendar>.provider``). Built-in names are served by ``agent.server.wiring`` and
``agent.server.calendars``; any other name is looked up here, in this order:

1. a factory registered in this process (``register_stt``, ``register_tts``,
   ``register_calendar``, re-exported by ``slotline``);
2. an entry point that an installed distribution declares in the group ``slotline.stt``,
   ``slotline.tts`` or ``slotline.calendars`` (loaded only when a setting selects it; one named
   like a built-in provider is never used).

Validation of the settings asks ``Table.check`` and so accepts exactly these names; an unknown
name is an error listing the known ones. A factory receives a ``ProviderContext`` (the settings
section of its provider, the secrets, the server's shared HTTP session) and returns the
provider. Whatever it returns with ``start()`` / ``aclose()`` is started before the server
listens and closed when it stops (``aclose()`` alone: closed only). Register before loading the
settings; a process started by ``serve --workers`` sees entry points, not registrations.

This module imports nothing heavy: ``import slotline`` stays fast.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from slotline.providers.errors import ConfigError

if TYPE_CHECKING:
    import aiohttp

    from slotline.agent.config_models import (
        CalendarSettings,
        Secrets,
        SttSettings,
        TtsSettings,
    )
    from slotline.providers.base import SpeechToText, TextToSpeech
    from slotline.providers.calendars.base import CalendarProvider

Kind = Literal["stt", "tts", "calendar"]
S = TypeVar("S")  # the settings section a factory is given
P = TypeVar("P")  # the provider Protocol it returns

# A name as written in YAML and in SLOTLINE_STT__PROVIDER: lower case, digits, '_' and '-'.
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class ProviderContext(Generic[S]):
    """What a provider factory is given.

    ``settings``: the provider's section (``SttSettings``, ``TtsSettings``, or one calendar's
    ``CalendarSettings``), with ``options`` for keys of the provider's own. ``name``: the
    provider name the setting selected; ``calendar``: the calendar's key in ``calendars``
    ("" for STT and TTS). ``http``: the server's shared session, closed with the server (do
    not close it). Secrets a plug-in needs beyond ``secrets`` come from its own environment
    variables, read by the factory.
    """

    name: str
    settings: S
    secrets: Secrets
    http: aiohttp.ClientSession
    calendar: str = ""


Factory = Callable[[ProviderContext[S]], P]


class Table(Generic[S, P]):
    """The providers of one kind: built-in names, registered factories, entry points.
    ``method``: the Protocol method a provider of this kind must have."""

    def __init__(
        self, kind: Kind, label: str, group: str, builtin: tuple[str, ...], method: str
    ) -> None:
        self.kind = kind
        self.label = label  # "STT provider"
        self.group = group  # the entry-point group
        self.builtin = builtin
        self.method = method
        self._factories: dict[str, Factory[S, P]] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: Factory[S, P], *, replace: bool = False) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{self.label} name {name!r}: use lower-case letters, digits, "
                             "'_' or '-', starting with a letter")
        if name in self.builtin:
            raise ValueError(f"{name!r} is a built-in {self.label}; choose another name")
        if not callable(factory):
            raise TypeError(f"the factory for {self.label} {name!r} is not callable")
        with self._lock:
            if name in self._factories and not replace:
                raise ValueError(f"{self.label} {name!r} is already registered "
                                 "(pass replace=True to replace it)")
            self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Forget a registered factory (entry points stay: they belong to installed packages)."""
        with self._lock:
            self._factories.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every name a setting may use now, sorted."""
        found = {*self.builtin, *self._factories, *(ep.name for ep in self._entry_points())}
        return tuple(sorted(found))

    def check(self, name: str) -> str:
        """``name`` if a setting may select it, else ``ValueError`` listing the known names."""
        if name in self.builtin or name in self._factories:
            return name
        if any(ep.name == name for ep in self._entry_points()):
            return name
        known = ", ".join(repr(known) for known in self.names())
        raise ValueError(
            f"must be one of {known}, got {name!r} (an unknown {self.label}: a plug-in is "
            f"registered with slotline.register_{self.kind}() before the settings are loaded, "
            f"or installed with an entry point in the group {self.group!r})"
        )

    def build(self, context: ProviderContext[S], key: str) -> P:
        """The plug-in provider ``context.name``, made by its factory. Every failure (not
        found, not loadable, the factory raising or returning something without the Protocol's
        method) is a ``ConfigError`` naming the setting ``key`` (e.g. ``tts.provider``)."""
        name = context.name
        factory = self.factory(name, key)
        try:
            provider = factory(context)
        except ConfigError:
            raise
        except Exception as exc:  # third-party code: one start-up error, the cause chained
            raise ConfigError("settings", key, f"the factory of {self.label} {name!r} "
                              f"failed: {type(exc).__name__}: {exc}") from exc
        if not callable(getattr(provider, self.method, None)):
            raise ConfigError("settings", key, f"the factory of {self.label} {name!r} "
                              f"returned {type(provider).__name__}, which has no "
                              f"{self.method}()")
        return provider

    def factory(self, name: str, key: str) -> Factory[S, P]:
        """The factory of a plug-in ``name``; ``key`` names the setting in a ``ConfigError``
        when it cannot be found or loaded."""
        with self._lock:
            registered = self._factories.get(name)
        if registered is not None:
            return registered
        for entry in self._entry_points():
            if entry.name == name:
                loaded: Factory[S, P] = _load(entry, key)  # trusted to be one: it is callable
                return loaded
        raise ConfigError("settings", key, self._unknown(name))

    def _unknown(self, name: str) -> str:
        try:
            self.check(name)
        except ValueError as exc:
            return str(exc)
        return f"{self.label} {name!r} is built in"  # a built-in name reached the plug-in path

    def _entry_points(self) -> tuple[EntryPoint, ...]:
        # Read afresh each time (a few ms, only for names that are neither built in nor
        # registered): a package installed into the running interpreter is found.
        return tuple(entry_points(group=self.group))


def _load(entry: EntryPoint, key: str) -> Any:
    where = f"entry point {entry.name} = {entry.value} (group {entry.group})"
    try:
        loaded = entry.load()
    except Exception as exc:  # a third-party import failing: one clear start-up error
        raise ConfigError("settings", key, f"{where} failed to load: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not callable(loaded):
        raise ConfigError("settings", key, f"{where} is not a callable factory")
    return loaded


SttFactory = Callable[[ProviderContext["SttSettings"]], "SpeechToText"]
TtsFactory = Callable[[ProviderContext["TtsSettings"]], "TextToSpeech"]
CalendarFactory = Callable[[ProviderContext["CalendarSettings"]], "CalendarProvider"]

STT: Table[SttSettings, SpeechToText] = Table(
    "stt", "STT provider", "slotline.stt", ("deepgram", "local"), "open_stream")
TTS: Table[TtsSettings, TextToSpeech] = Table(
    "tts", "TTS provider", "slotline.tts", ("elevenlabs", "local"), "synthesize")
CALENDARS: Table[CalendarSettings, CalendarProvider] = Table(
    "calendar", "calendar provider", "slotline.calendars",
    ("caldav", "calcom", "ghl", "google", "local", "outlook", "webhook"), "busy",
)


def register_stt(name: str, factory: SttFactory, *, replace: bool = False) -> None:
    """Make ``stt.provider: <name>`` build its recogniser with ``factory(context)``."""
    STT.register(name, factory, replace=replace)


def register_tts(name: str, factory: TtsFactory, *, replace: bool = False) -> None:
    """Make ``tts.provider: <name>`` build its voice with ``factory(context)``."""
    TTS.register(name, factory, replace=replace)


def register_calendar(name: str, factory: CalendarFactory, *, replace: bool = False) -> None:
    """Make ``calendars.<calendar>.provider: <name>`` build that calendar with
    ``factory(context)`` (once per calendar using it)."""
    CALENDARS.register(name, factory, replace=replace)


__all__ = [
    "CALENDARS",
    "STT",
    "TTS",
    "CalendarFactory",
    "Factory",
    "ProviderContext",
    "SttFactory",
    "Table",
    "TtsFactory",
    "register_calendar",
    "register_stt",
    "register_tts",
]
