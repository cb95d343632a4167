"""Optional dependencies: the package's extras, and the one error a missing one raises.

The default install runs offline (``slotline demo``, ``slotline serve`` with no configuration);
everything else is an extra (pyproject.toml):

    cloud       openai, httpx2, websockets    OpenAI-compatible models, Deepgram
    postgres    asyncpg                       store.url: postgresql://...
    caldav      caldav, icalendar             CalDAV calendars
    google      google-auth                   Google Calendar (service account)
    emulators   jsonschema, websockets,       slotline emulate, slotline bench
                google-auth, cryptography
    silero      onnxruntime                   vad.engine: silero
    smartturn   onnxruntime                   turn.smart_turn (+ pip install --no-deps pipecat-ai)
    otel        opentelemetry-sdk, -exporter  OpenTelemetry traces

A module that needs one raises ``MissingExtra`` (a ``ConfigError``: the settings asked for
something this install lacks) naming the feature, the module and the ``pip install`` line; the
command line prints it as one line (``exit_on_missing_extra``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from slotline.providers.errors import ConfigError

__all__ = ["MissingExtra", "exit_on_missing_extra", "missing", "require"]


class MissingExtra(ConfigError):
    """An optional dependency is not installed."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(feature, f"module {module!r}",
                         f"not installed; pip install 'slotline[{extra}]'")  # fmt: skip
        self.module = module
        self.extra = extra


def missing(exc: ModuleNotFoundError, extra: str, feature: str) -> MissingExtra:
    """``MissingExtra`` for an import that failed (``raise missing(exc, ...) from None``)."""
    return MissingExtra(feature, (exc.name or "?").partition(".")[0], extra)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # "google.auth" when "google" itself is absent
        return False


def require(extra: str, feature: str, *modules: str) -> None:
    """Raise ``MissingExtra`` unless every one of ``modules`` is importable."""
    for module in modules:
        if not _installed(module):
            raise MissingExtra(feature, module, extra)


@contextmanager
def exit_on_missing_extra() -> Iterator[None]:
    """Around a command-line entry point (``@exit_on_missing_extra()``): a ``MissingExtra`` is
    one line on stderr and exit status 2, not a traceback."""
    try:
        yield
    except MissingExtra as exc:
        print(f"slotline: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
