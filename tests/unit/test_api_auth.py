"""Who may read ``/api/*`` and ``/metrics`` (issue 17, defect 10 a–c), over real sockets.

Without ``SLOTLINE_API_TOKEN`` the API answers only direct requests from this machine: a loopback
peer, a loopback Host name, and no forwarding header of any kind (a tunnel or proxy on this
machine also connects from loopback). ``server.metrics_auth`` puts ``/metrics`` behind the same
rule; ``/metrics`` shows the process's live asyncio tasks and resident memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from tests.e2e.conftest import Server, running_server

API_TOKEN = "api-s3cret"
FORWARDING = (
    {"Forwarded": "for=203.0.113.7"},
    {"X-Forwarded-For": "203.0.113.7"},
    {"X-Forwarded-Host": "calls.example.com"},
    {"X-Forwarded-Proto": "https"},
    {"X-Real-IP": "203.0.113.7"},
    {"Via": "1.1 ngrok"},
    {"CF-Connecting-IP": "203.0.113.7"},
    {"True-Client-IP": "203.0.113.7"},
    {"X-Client-IP": "203.0.113.7"},
)


@pytest.fixture
async def open_server() -> AsyncIterator[Server]:
    runner, srv = await running_server()
    try:
        yield srv
    finally:
        await runner.cleanup()


async def _status(server: Server, path: str, headers: Mapping[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, \
            http.get(server.url + path, headers=headers) as response:
        return response.status


async def test_without_a_token_the_api_answers_direct_loopback_requests(
    open_server: Server,
) -> None:
    port = open_server.url.rpartition(":")[2]
    assert await _status(open_server, "/api/calls") == 200
    for host in (f"localhost:{port}", "127.0.0.1", f"LOCALHOST.:{port}"):
        assert await _status(open_server, "/api/calls", {"Host": host}) == 200, host


@pytest.mark.parametrize("headers", FORWARDING, ids=lambda h: next(iter(h)))
async def test_without_a_token_any_forwarding_header_closes_the_api(
    open_server: Server, headers: Mapping[str, str]
) -> None:
    assert await _status(open_server, "/api/calls", headers) == 401
    assert await _status(open_server, "/api/bookings", headers) == 401


async def test_without_a_token_a_foreign_host_name_closes_the_api(open_server: Server) -> None:
    """A page on another site that rebinds its name to 127.0.0.1 sends its own Host."""
    for host in ("rebind.example.com", "rebind.example.com:8080", "10.0.0.5", "[2001:db8::1]"):
        assert await _status(open_server, "/api/calls", {"Host": host}) == 401, host


async def test_with_a_token_the_bearer_decides_whatever_the_headers() -> None:
    runner, server = await running_server(secret_env={"SLOTLINE_API_TOKEN": API_TOKEN})
    try:
        bearer = {"Authorization": f"Bearer {API_TOKEN}"}
        assert await _status(server, "/api/calls") == 401
        assert await _status(server, "/api/calls", {"Authorization": "Bearer nope"}) == 401
        assert await _status(server, "/api/calls", bearer) == 200
        assert await _status(server, "/api/calls", {**bearer, **FORWARDING[1]}) == 200
        assert await _status(server, "/metrics", FORWARDING[1]) == 200  # metrics_auth is off
    finally:
        await runner.cleanup()


async def test_with_a_token_every_api_route_wants_the_bearer() -> None:
    """The app's own routes, the dialer's and the waitlist's: every ``/api`` route, whatever
    its method, answers 401 to no bearer and to a wrong one."""
    runner, server = await running_server(secret_env={"SLOTLINE_API_TOKEN": API_TOKEN})
    try:
        routes = {(route.method, route.resource.canonical) for route in runner.app.router.routes()
                  if route.resource is not None and route.resource.canonical.startswith("/api/")}
        paths = {path for _, path in routes}
        assert {"/api/calls", "/api/campaigns", "/api/dnc", "/api/waitlist"} <= paths
        async with aiohttp.ClientSession() as http:
            for method, path in sorted(routes):
                url = server.url + re.sub(
                    r"\{(\w+)\}", lambda m: "pause" if m[1] == "verb" else "x1", path)
                for headers in ({}, {"Authorization": "Bearer nope"}):
                    async with http.request(method, url, headers=headers) as response:
                        assert response.status == 401, (method, path, headers)
    finally:
        await runner.cleanup()


async def test_metrics_auth_puts_metrics_behind_the_api_token() -> None:
    runner, server = await running_server({"SLOTLINE_SERVER__METRICS_AUTH": "true"},
                                          {"SLOTLINE_API_TOKEN": API_TOKEN})
    try:
        assert await _status(server, "/metrics") == 401
        assert await _status(server, "/metrics", {"Authorization": "Bearer nope"}) == 401
        assert await _status(server, "/metrics", {"Authorization": f"Bearer {API_TOKEN}"}) == 200
        assert await _status(server, "/healthz") == 200  # health stays open for probes
    finally:
        await runner.cleanup()


async def test_metrics_auth_without_a_token_is_this_machine_only() -> None:
    runner, server = await running_server({"SLOTLINE_SERVER__METRICS_AUTH": "true"})
    try:
        assert await _status(server, "/metrics") == 200
        assert await _status(server, "/metrics", FORWARDING[0]) == 401
    finally:
        await runner.cleanup()


async def test_metrics_show_live_tasks_and_resident_memory(open_server: Server) -> None:
    async with aiohttp.ClientSession() as http, http.get(open_server.url + "/metrics") as r:
        text = await r.text()
    assert "# TYPE slotline_tasks gauge" in text
    assert "# TYPE process_resident_memory_bytes gauge" in text
    tasks = re.search(r"^slotline_tasks (\S+)$", text, re.MULTILINE)
    rss = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.MULTILINE)
    assert tasks is not None and float(tasks.group(1)) >= 1  # at least the request's own task
    assert rss is not None and float(rss.group(1)) > 10 * 1024 * 1024  # a Python server: > 10 MB
