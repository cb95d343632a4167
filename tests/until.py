"""Waiting in tests for work that happens in the background (a server's task, a socket)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

WAIT_S = 10.0


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = WAIT_S) -> None:
    """Return once ``condition()`` holds; fail (``TimeoutError``) after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while True:
            met = condition()
            if met if isinstance(met, bool) else await met:
                return
            await asyncio.sleep(0.01)
