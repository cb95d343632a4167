"""One timer per wake-up time for every simulated caller in a process, not one per call.

A caller sends a frame every 20 ms at ``t0 + n * 20 ms``. Sleeping for each frame costs a
future, a timer handle, a heap push and pop, and — because the calls' phases are spread
over the 20 ms — one event-loop iteration (an ``epoll_wait``) per call per frame. Here each
caller's ``t0`` is put on a grid of ``GRID_MS`` (``align``: at most one grid step later than
asked), so at any number of calls there are at most ``FRAME_MS / GRID_MS`` distinct wake-up
times per frame; one timer per wake-up time wakes every caller due then, in one loop
iteration. A caller either waits on its own future (``until``: cancelling one caller cancels
only that caller) or, cheaper, has its frame function called straight from that timer every
frame period until it returns False (``every``: no future or task switch per frame, and the
caller stays in its grid point's list from one period to the next).
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

# What a grid point calls: (function, its argument, 0) once, or (tick, None, grid steps between
# its calls) for ``every``.
_Entry = tuple[Callable[..., object], Any, int]

GRID_MS = 2  # 10 wake-up times per 20 ms frame, whatever the number of calls
FRAME_MS = 20  # a caller's frame period (Twilio's media cadence)


class FrameClock:
    """Shared wake-ups on the running loop's clock (``loop.time()``, the monotonic clock)."""

    def __init__(self, grid_ms: float = GRID_MS) -> None:
        if grid_ms <= 0:
            raise ValueError("grid_ms must be > 0")
        self._grid_s = grid_ms / 1000
        # grid index -> what to call then
        self._due: dict[int, list[_Entry]] = {}
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

    def every(self, t0_s: float, tick: Callable[[], object],
              period_ms: float = FRAME_MS) -> None:
        """Call ``tick()`` at ``t0_s`` (loop time, best on the grid) and then every
        ``period_ms`` (a whole number of grid steps), counted from ``t0_s`` so it never drifts,
        until it returns something false; soon, if a time has passed."""
        steps = round(period_ms / (self._grid_s * 1000))
        if steps < 1 or abs(steps * self._grid_s * 1000 - period_ms) > 1e-6:
            raise ValueError("period_ms must be a whole number of grid steps")
        index = math.ceil(t0_s / self._grid_s - 1e-9)
        self._append(asyncio.get_running_loop(), index, (tick, None, steps))

    def _add(self, loop: asyncio.AbstractEventLoop, target_s: float,
             function: Callable[[Any], object], arg: Any) -> None:
        index = math.ceil(target_s / self._grid_s - 1e-9)  # never before the target
        self._append(loop, index, (function, arg, 0))

    def _append(self, loop: asyncio.AbstractEventLoop, index: int, entry: _Entry) -> None:
        due = self._due.get(index)
        if due is None:
            due = self._due[index] = []
            loop.call_at(index * self._grid_s, self._fire, index)
            self.timers += 1
        due.append(entry)

    def _fire(self, index: int) -> None:
        loop = None
        for entry in self._due.pop(index, ()):
            function, arg, steps = entry
            if not steps:
                function(arg)
            elif function():  # a repeating tick that wants its next period
                loop = loop or asyncio.get_running_loop()
                self._append(loop, index + steps, entry)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled caller's future is done already
        future.set_result(None)
