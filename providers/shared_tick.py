"""One housekeeping timer per event loop and period, shared by every connection that needs one.

A vendor stream checks a few things on a clock (a stalled partial batch, a KeepAlive owed).
With a timer per connection, 200 calls are 2,000 timer callbacks a second, each a
``TimerHandle`` pushed onto and popped off the loop's heap. ``SharedTick`` calls every
registered callback from one timer instead: the same checks, one heap entry per period.

Callbacks run in the order they were added. One that raises is logged and stays registered:
a bug in one connection's housekeeping must not stop the others'.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

_TICKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, SharedTick]] = (
    weakref.WeakKeyDictionary())


class SharedTick:
    """Calls every added callback each ``period_s`` while any is added (no timer otherwise)."""

    __slots__ = ("_callbacks", "_handle", "_loop", "period_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float) -> None:
        self._loop = loop
        self.period_s = period_s
        self._callbacks: dict[Callable[[], object], None] = {}  # ordered set
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._callbacks)

    def add(self, callback: Callable[[], object]) -> None:
        self._callbacks[callback] = None
        if self._handle is None:
            self._handle = self._loop.call_later(self.period_s, self._run)

    def discard(self, callback: Callable[[], object]) -> None:
        self._callbacks.pop(callback, None)
        if not self._callbacks and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        for callback in list(self._callbacks):
            if callback not in self._callbacks:  # discarded by an earlier one this round
                continue
            try:
                callback()
            except Exception:
                log.exception("housekeeping callback %r failed", callback)
        self._handle = (self._loop.call_later(self.period_s, self._run)
                        if self._callbacks else None)


def shared_tick(period_s: float) -> SharedTick:
    """The running loop's tick of ``period_s`` (made on first use)."""
    loop = asyncio.get_running_loop()
    by_period = _TICKS.setdefault(loop, {})
    tick = by_period.get(period_s)
    if tick is None:
        tick = by_period[period_s] = SharedTick(loop, period_s)
    return tick
