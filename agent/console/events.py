"""``/console/events``: the calls page's live updates as server-sent events.

Each client's stream polls the store and the in-memory call log every ``POLL_S`` and sends the
rows whose HTML changed (a call started, moved on, ended). Polling keeps the call path free of
any console hook, works for calls written by other worker processes into the same store, and
costs one small query a second per open page. Streams are bounded (``MAX_CLIENTS``) and end at
shutdown, so a browser tab left open never holds the server up.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import orjson
from aiohttp import web

from slotline.agent.console.auth import require_data
from slotline.agent.console.calls import call_row_html
from slotline.agent.console.data import CallFilter, call_rows
from slotline.agent.server.app import CONTEXT

POLL_S = 1.0  # how fresh the calls page is; a row's duration ticks at this pace too
MAX_CLIENTS = 32  # open console tabs across all operators; more is a runaway script
RETRY_MS = 2000  # the browser reconnects after this when the stream drops


class EventHub:
    """The open streams of one application: counted, and stopped together at shutdown."""

    def __init__(self) -> None:
        self.clients = 0
        self.stopping = asyncio.Event()

    async def on_shutdown(self, app: web.Application) -> None:
        self.stopping.set()


HUB: web.AppKey[EventHub] = web.AppKey("slotline_console_events", EventHub)


async def call_events(request: web.Request) -> web.StreamResponse:
    require_data(request)
    hub = request.app[HUB]
    if hub.clients >= MAX_CLIENTS:
        raise web.HTTPServiceUnavailable(text="too many console streams open")
    wanted = CallFilter.from_query(request.query)
    deps = request.app[CONTEXT].deps
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    hub.clients += 1
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        sent: dict[str, str] = {}
        while not hub.stopping.is_set():
            rows = await call_rows(deps, wanted)
            now = datetime.now(UTC)
            # every row on the first poll too: a call may have started since the page was drawn
            for row in reversed(rows):  # oldest first: the page puts each new one on top
                html = call_row_html(row, now)
                if sent.get(row.sid) != html:
                    data = orjson.dumps({"sid": row.sid, "html": html}).decode()
                    await response.write(f"event: call\ndata: {data}\n\n".encode())
                    sent[row.sid] = html
            keep = {row.sid for row in rows}
            sent = {sid: html for sid, html in sent.items() if sid in keep}  # bounded
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.stopping.wait(), POLL_S)
    except ConnectionResetError:  # the tab was closed
        pass
    finally:
        hub.clients -= 1
    return response
