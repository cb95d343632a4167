"""Logging set-up: one format; phone numbers and e-mail addresses masked on every line, tracebacks
included; repeated warnings of one call limited to a few lines and a count.

Masking covers the whole record, not only the message: an exception's text (a database error,
a vendor's reply) is where personal data slips through. The filter rewrites the record itself —
message, traceback text, stack — so every handler that sees it after ours writes masked text; the
formatter masks the final line as well, so nothing a format string adds gets through either.
(Statement parameters never reach an exception in the first place: ``agent.store.db`` creates its
engines with ``hide_parameters``.)

Rate limiting: one client sending malformed media messages made the session log a warning per
message — 3.29 million lines in five minutes. ``RateLimitFilter`` sits on the handler, so no call
site has to change: records at WARNING and above are keyed by (logger, call, code), at most
``max_lines`` per key pass in a window, and the rest are counted and reported in one line when
the window rolls, when the call ends (``call_ended``) or at exit.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, TypeAlias

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
# Phone shapes: E.164 (+ then 9-15 digits, separators allowed), NANP "(555) 123-4567" /
# "555-123-4567", or 10-15 bare digits. IPs, ports, dates and byte counts do not match.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d[\d\s().-]{7,}\d|\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}|\d{10,15})(?!\w)"
)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Five lines show what is wrong and that it goes on; ten seconds keeps a flood to one line a
# second per call and code, plus one count per window.
RATE_LIMIT_LINES = 5
RATE_LIMIT_WINDOW_S = 10.0
# Keys are (logger, call, code) of windows still open: hundreds of calls times a few codes. At
# ~300 bytes a key this caps the limiter near 1 MB whatever a caller sends.
RATE_LIMIT_MAX_KEYS = 4096
_CALL_SID = re.compile(r"\bcall_sid=([^\s,;:]+)")
_SUMMARY = "slotline_rate_limit_summary"  # marks our own count lines, which are never limited
_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)


def mask(text: str) -> str:
    """``john.smith@example.com`` → ``j***@example.com``; ``+15551234567`` → ``***67``."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group(0))[-2:], text)


class MaskingFilter(logging.Filter):
    """Masks the record in place: its message, its exception text and its stack text."""

    _traceback = logging.Formatter()  # renders the exception text the formatter would cache

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for the handler to report
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


class MaskingFormatter(logging.Formatter):
    """Masks the finished line, and the traceback text it caches on the record."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))

    def formatException(self, ei: _ExcInfo) -> str:  # noqa: N802 (stdlib name)
        return mask(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (stdlib name)
        return mask(super().formatStack(stack_info))


class _Key(NamedTuple):
    logger: str
    call_sid: str  # "" when the line names no call
    code: str


@dataclass(slots=True)
class _Window:
    """Mutable on purpose: it counts one key's lines, under the limiter's lock."""

    opened_at_s: float
    passed: int
    suppressed: int
    level: int


@dataclass(frozen=True, slots=True)
class _Held:
    key: _Key
    count: int
    level: int


# The calls of one code share a budget of this many times one call's: a flood spread over many
# connections is bounded too.
ALL_CALLS_FACTOR = 4
ALL_CALLS = "*"
# And all codes of all calls share this many times one code's: a fuzzer varying what it breaks
# (a dozen codes, each under its own budget) still gets a bounded number of lines.
ALL_CODES_FACTOR = 2
_EVERYTHING = ("*", ALL_CALLS, "*")


class RateLimitFilter(logging.Filter):
    """At most ``max_lines`` records per (logger, call_sid, code) in each ``window_s``, and at
    most ``ALL_CALLS_FACTOR`` times that per (logger, code) over all calls; the rest become one
    "suppressed N similar messages" line per key.

    ``call_sid`` comes from the record's ``extra`` or from ``call_sid=…`` in the message. ``code``
    comes from ``extra``, else from an argument that carries a ``code`` (``ProtocolError``), else
    it is the format string, so lines from one logging call count together. Records below
    ``min_level`` pass untouched. Counts are reported when a window has rolled (checked on every
    record any logger sends through this filter), when a key is evicted, and on ``flush``.
    """

    def __init__(
        self,
        max_lines: int = RATE_LIMIT_LINES,
        window_s: float = RATE_LIMIT_WINDOW_S,
        *,
        max_keys: int = RATE_LIMIT_MAX_KEYS,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._max_lines = max_lines
        self._max_lines_all_calls = max_lines * ALL_CALLS_FACTOR
        self._max_lines_all_codes = self._max_lines_all_calls * ALL_CODES_FACTOR
        self._window_s = window_s
        self._max_keys = max_keys
        self._min_level = min_level
        self._clock = clock
        self._lock = threading.Lock()
        # Oldest window first: windows are only ever added at the end, so the ones that have
        # rolled, and the ones to evict, are always at the front.
        self._windows: OrderedDict[_Key, _Window] = OrderedDict()

    def _window(self, key: _Key, now_s: float, level: int, held: list[_Held]) -> _Window:
        windows = self._windows
        window = windows.get(key)
        if window is None:
            window = windows[key] = _Window(now_s, 0, 0, level)
            if len(windows) > self._max_keys:
                self._forget(windows.popitem(last=False), held)
        return window

    @property
    def tracked_keys(self) -> int:
        return len(self._windows)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        key = _key_of(record) if record.levelno >= self._min_level else None
        now_s = self._clock()
        held: list[_Held] = []
        passes = True
        with self._lock:
            windows = self._windows
            while windows:
                oldest = next(iter(windows.values()))
                if now_s - oldest.opened_at_s < self._window_s:
                    break
                self._forget(windows.popitem(last=False), held)
            if key is not None:
                window = self._window(key, now_s, record.levelno, held)
                # many calls each under their own budget (a fuzzer opening socket after
                # socket) still share one budget per code
                overall = everything = None
                if key.call_sid:
                    overall = self._window(_Key(key.logger, ALL_CALLS, key.code), now_s,
                                           record.levelno, held)
                    everything = self._window(_Key(*_EVERYTHING), now_s, record.levelno, held)
                if window.passed >= self._max_lines:
                    blocked: _Window | None = window
                elif overall is not None and self._spent(overall, everything):
                    blocked = overall  # counted under its code, told once across calls
                else:
                    blocked = None
                    window.passed += 1
                    if overall is not None and everything is not None:
                        overall.passed += 1
                        everything.passed += 1
                if blocked is not None:
                    blocked.suppressed += 1
                    blocked.level = max(blocked.level, record.levelno)
                    passes = False
        _report(held)  # outside the lock: these lines come back through this filter
        return passes

    def flush(self, call_sid: str | None = None) -> None:
        """Report and forget what is held back: for one call, or for all when None."""
        held: list[_Held] = []
        with self._lock:
            ending = [k for k in self._windows if call_sid is None or k.call_sid == call_sid]
            for key in ending:
                self._forget((key, self._windows.pop(key)), held)
        _report(held)

    def _forget(self, item: tuple[_Key, _Window], held: list[_Held]) -> None:
        """Hold ``item``'s "suppressed N" line for reporting. A call's summary line spends its
        code's budget across calls like any other line; once that is spent, the count joins the
        across-calls window and is told once with it (thousands of short calls each ending
        with a summary would be a flood of their own)."""
        key, window = item
        if not window.suppressed:
            return
        if key.call_sid and key.call_sid != ALL_CALLS:
            overall = self._windows.get(_Key(key.logger, ALL_CALLS, key.code))
            everything = self._windows.get(_Key(*_EVERYTHING))
            if overall is not None:
                if self._spent(overall, everything):
                    overall.suppressed += window.suppressed
                    overall.level = max(overall.level, window.level)
                    return
                overall.passed += 1
                if everything is not None:
                    everything.passed += 1
        held.append(_Held(key, window.suppressed, window.level))

    def _spent(self, overall: _Window, everything: _Window | None) -> bool:
        """Whether a code's budget across calls, or all codes' together, is used up."""
        return overall.passed >= self._max_lines_all_calls or (
            everything is not None and everything.passed >= self._max_lines_all_codes)


def _key_of(record: logging.LogRecord) -> _Key:
    call_sid = getattr(record, "call_sid", None)
    if not isinstance(call_sid, str):
        try:
            found = _CALL_SID.search(record.getMessage())
        except Exception:  # a bad format string: the handler reports it
            found = None
        call_sid = found.group(1) if found else ""
    code = getattr(record, "code", None)
    if not isinstance(code, str):
        code = _code_in(record.args) or str(record.msg)
    return _Key(record.name, call_sid, code)


def _code_in(args: object) -> str:
    """The ``code`` of the first logging argument that has one (a ``ProtocolError``)."""
    if isinstance(args, Mapping):
        values: Iterable[object] = args.values()
    elif isinstance(args, tuple):
        values = args
    else:
        return ""
    for value in values:
        code = getattr(value, "code", None)
        if isinstance(code, str):
            return code
    return ""


def _report(held: list[_Held]) -> None:
    for item in held:
        key = item.key
        call = (" across calls" if key.call_sid == ALL_CALLS
                else f" call_sid={key.call_sid}" if key.call_sid else "")
        logger = logging.getLogger(None if key.logger == "root" else key.logger)
        logger.log(
            item.level,
            "suppressed %d similar messages (code %s)%s",
            item.count,
            key.code,
            call,
            extra={_SUMMARY: True},
        )


_active: RateLimitFilter | None = None


def call_ended(call_sid: str) -> None:
    """Report now what was held back for a call that is over (its windows would roll silently
    otherwise, if nothing else were logged)."""
    if _active is not None:
        _active.flush(call_sid)


def _flush_at_exit() -> None:
    if _active is not None:
        _active.flush()


def configure(level: str, log_format: str = "text", *, worker: str = "") -> None:
    """One handler on the root logger: rate-limited, then masked, then formatted and masked
    again. Called once at start-up; a second call replaces the handler and its limiter.
    ``log_format`` ``json``: ``agent.json_logs``; ``worker`` names a supervised worker on each
    line, so the lines of processes sharing a port can be told apart."""
    global _active
    if _active is None:
        atexit.register(_flush_at_exit)  # last registered runs first: before logging shuts down
    _active = RateLimitFilter()
    handler = logging.StreamHandler()
    if log_format == "json":
        from slotline.agent.json_logs import JsonFormatter

        handler.setFormatter(JsonFormatter(mask, worker))
    else:
        tag = f"{worker.replace('%', '%%')}[%(process)d] " if worker else ""
        handler.setFormatter(MaskingFormatter(_FORMAT.replace("%(name)s", tag + "%(name)s")))
    handler.addFilter(_active)  # first: it keys on the unmasked record's arguments
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
