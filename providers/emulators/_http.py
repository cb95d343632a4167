"""What every REST vendor emulator shares: a loopback aiohttp server with latency and faults.

A subclass adds its routes in ``_routes`` and keeps its vendor's state. This base gives it:
- ``start()`` on a free port (``port=0``), ``base_url``, ``aclose()``, ``async with``;
- a latency knob (``latency_ms`` + seeded uniform ``jitter_ms``) applied before every answer;
- fault injection: ``fail_next(status, count, body)`` answers the next requests with that status,
  ``drop_next(count)`` closes the connection after the request was *handled* (the state changed,
  the client never hears it — the "retried create after a dropped response" case),
  ``stall_next(count)`` never answers (the client's timeout ends it);
- per-route request counts (``counts["POST /v2/bookings"]``) for benches quoting requests per
  booking, and ``requests`` (every request seen, in order) for tests.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from slotline.providers.base import ResourceContext

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STALL_S = 3600.0


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    route: str  # the route pattern, e.g. "/v2/bookings/{uid}"
    path: str
    status: int


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: a free port); the runner and the port it got.
    A handler is cancelled when its client goes away: that is how a stall ends."""
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]


class HttpEmulator(ResourceContext):
    """Base of the REST emulators; see the module doc."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._host, self._port = host, port
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self._random = random.Random(seed)
        self._failures: deque[tuple[int, object]] = deque()
        self._drops = 0
        self._stalls = 0
        self._runner: web.AppRunner | None = None
        self.counts: Counter[str] = Counter()
        self.requests: list[SeenRequest] = []

    # ---- to override ------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _error_body(self, status: int) -> object:
        """The vendor's error shape for an injected failure."""
        return {"error": {"code": status, "message": f"injected failure {status}"}}

    # ---- faults -----------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, body: object | None = None) -> None:
        for _ in range(count):
            self._failures.append((status, body if body is not None else self._error_body(status)))

    def drop_next(self, count: int = 1) -> None:
        self._drops += count

    def stall_next(self, count: int = 1) -> None:
        self._stalls += count

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """What a user puts in the provider's ``base_url`` (override to add a path)."""
        return self.origin

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
        self._runner, self._port = await serve(app, self._host, self._port)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- the common path --------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else request.path
        self.counts[f"{request.method} {route}"] += 1
        delay = self.latency_ms + (self._random.uniform(0, self.jitter_ms) if self.jitter_ms else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if self._stalls:
            self._stalls -= 1
            await asyncio.sleep(_STALL_S)
        if self._failures:
            status, body = self._failures.popleft()
            self.requests.append(SeenRequest(request.method, route, request.path, status))
            return json_response(body, status)
        response = await handler(request)
        self.requests.append(SeenRequest(request.method, route, request.path, response.status))
        if self._drops:
            self._drops -= 1
            transport = request.transport
            if transport is not None:
                transport.close()  # handled, never answered
        return response
