"""One timer per wake-up time for every simulated caller in a process, not one per call.

A caller sends a frame every 20 ms at ``t0 + n * 20 ms``. Sleeping for each frame costs a
future, a timer handle, a heap push and pop, and — because the calls' phases are spread
over the 20 ms — one event-loop iteration (an ``epoll_wait``) per call per frame. Here each
caller's ``t0`` is put on a grid of ``GRID_MS`` (``align``: at most one grid step later than
asked), so at any number of calls there are at most ``FRAME_MS / GRID_MS`` distinct wake-up
times per frame; one timer per wake-up time wakes every caller due then, in one loop
iteration. A caller either waits on its own future (``until``: cancelling one caller cancels
only that caller) or, cheaper, has its frame function called straight from that timer
(``call_at``: no future, no task switch per frame; the caller schedules its next frame itself).
Callers measure their lateness against their own aligned ``t0 + n * 20 ms``, as before.

The grid bunches the frames the server receives into ``FRAME_MS / GRID_MS`` bursts per frame
period, where Twilio's calls arrive at random phases; at 2 ms the bursts are 10 per frame, a
small departure for a large saving at hundreds of calls.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

GRID_MS = 2  # 10 wake-up times per 20 ms frame, whatever the number of calls


class FrameClock:
    """Shared wake-ups on the running loop's clock (``loop.time()``, the monotonic clock)."""

    def __init__(self, grid_ms: float = GRID_MS) -> None:
        if grid_ms <= 0:
            raise ValueError("grid_ms must be > 0")
        self._grid_s = grid_ms / 1000
        # grid index -> what to call then: (function, its argument)
        self._due: dict[int, list[tuple[Callable[[Any], object], Any]]] = {}
        self.timers = 0  # timers armed so far (a test's measure of the sharing)

    def align(self, now_s: float) -> float:
        """The first grid point at or after ``now_s``: where a caller's frames start."""
        return math.ceil(now_s / self._grid_s - 1e-9) * self._grid_s

    async def until(self, target_s: float) -> None:
        """Return at ``target_s`` (loop time, best on the grid); at once if it has passed."""
        loop = asyncio.get_running_loop()
        if target_s <= loop.time():
            return
        future: asyncio.Future[None] = loop.create_future()
        self._add(loop, target_s, _wake, future)
        await future

    def call_at(self, target_s: float, function: Callable[[Any], object], arg: Any) -> None:
        """Call ``function(arg)`` at ``target_s`` (loop time, best on the grid) from the grid
        point's one timer; soon, if it has passed (the loop runs timers that are due)."""
        self._add(asyncio.get_running_loop(), target_s, function, arg)

    def _add(self, loop: asyncio.AbstractEventLoop, target_s: float,
             function: Callable[[Any], object], arg: Any) -> None:
        index = math.ceil(target_s / self._grid_s - 1e-9)  # never before the target
        due = self._due.get(index)
        if due is None:
            due = self._due[index] = []
            loop.call_at(index * self._grid_s, self._fire, index)
            self.timers += 1
        due.append((function, arg))

    def _fire(self, index: int) -> None:
        for function, arg in self._due.pop(index, ()):
            function(arg)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled caller's future is done already
        future.set_result(None)
