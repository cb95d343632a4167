"""A tiny aiohttp server on 127.0.0.1 for tests that play the other side of a WebSocket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web


@contextlib.asynccontextmanager
async def serving_ws(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], path: str
) -> AsyncIterator[str]:
    """``handler`` answering GET ``path`` on a free port; yields its ``ws://`` URL."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"ws://{host}:{port}{path}"
    finally:
        await runner.cleanup()
