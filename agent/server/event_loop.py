"""Which event loop a serving process (and the benchmark's own processes) runs on.

``server.event_loop``: ``auto`` (the default) takes uvloop where it is installed (a dependency
on Linux and macOS) and asyncio's own loop elsewhere; ``uvloop`` insists on it (a clear error
when it is missing); ``asyncio`` is the standard library's selector loop.

Why uvloop: once the per-frame work was cut to ~10 µs a frame, much of a call's CPU was the
loop's own, not ours: waking up, reading ~50 small WebSocket messages a second per call, running
their callbacks, writing the replies. uvloop does that part in C. Measured side by side on one
core (two ``slotline bench --profile cloud --calls 100 --duration 60 --server-cpus 0`` at once,
one with ``SLOTLINE_SERVER__EVENT_LOOP=asyncio``, twice; 2026-12-07): the server's CPU per
call-second 4.09 and 4.00 ms on uvloop against 4.49 and 4.36 on asyncio's loop (-9 %). Runs one
after the other drift more than that on this box (-15 % to +9 % between pairs). Everything the
server does with its loop (sockets handed to aiohttp, timers, executors, signals, subprocess
pipes) is in both loops' public API. uvloop's ``loop.time()`` is the same monotonic clock in
whole milliseconds and its timers have 1 ms resolution, which no 20 ms frame notices; it runs
``getaddrinfo`` on libuv's pool of 4 threads (``UV_THREADPOOL_SIZE``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from slotline.providers.errors import ConfigError

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]  # the setting's values

T = TypeVar("T")


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_factory(choice: EventLoopChoice = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new event loop of the chosen kind."""
    if choice == "asyncio" or (choice == "auto" and not uvloop_installed()):
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        raise ConfigError("settings", "server.event_loop", "uvloop is not installed (pip install "
                          "uvloop); choose auto or asyncio") from None
    return uvloop.new_event_loop


def new_event_loop(choice: EventLoopChoice = "auto") -> asyncio.AbstractEventLoop:
    return loop_factory(choice)()


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """``asyncio.run(main)`` on a loop of the chosen kind (also the thread's current loop)."""
    try:
        factory = loop_factory(choice)
    except ConfigError:
        main.close()  # never awaited, and not reported as such
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        asyncio.set_event_loop(runner.get_loop())  # as asyncio.run does; a Runner given a
        try:                                       # factory does not (3.11)
            return runner.run(main)
        finally:
            asyncio.set_event_loop(None)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio", for logs and reports."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
