"""A broadcast of one stream's items to any number of ``async for`` readers.

Recognition streams hand the same events to several readers (the frame pipeline's watcher,
early starts, a test); a reader that subscribes late sees only what is published after it
subscribed. Publishing never blocks: every reader has its own unbounded queue, drained as fast
as that reader iterates (a few events a second per call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Fanout(Generic[T]):
    """Every subscriber gets every item published after it subscribed; ``close`` ends their
    iteration (and any later subscription's at once)."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[T | None]] = []
        self.closed = False

    def publish(self, item: T) -> None:
        for queue in self._queues:
            queue.put_nowait(item)

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            queue.put_nowait(None)

    async def subscribe(self) -> AsyncIterator[T]:
        if self.closed:
            return
        queue: asyncio.Queue[T | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            self._queues.remove(queue)
