"""A real Slotline server on 127.0.0.1:0 for end-to-end calls."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from slotline.agent.call.session import SessionDeps
from slotline.agent.config import Secrets, Settings, load_secrets, load_settings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.demo import start_server

# Calls in these tests should be snappy: shorter end-of-turn silence than the default.
FAST_ENV = {"SLOTLINE_TURN__END_SILENCE_MS": "500"}


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    settings: Settings
    deps: SessionDeps

    @property
    def media_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/twilio/media"


async def running_server(
    env: Mapping[str, str] | None = None,
    secret_env: Mapping[str, str] | None = None,
    *,
    config: Path | None = None,
) -> tuple[web.AppRunner, Server]:
    """A server with its own fresh SQLite store (in a temporary folder)."""
    folder = tempfile.mkdtemp(prefix="slotline-e2e-")
    store_env = {"SLOTLINE_STORE__URL": f"sqlite:///{folder}/e2e.db"}
    settings = load_settings(config, {**FAST_ENV, **store_env, **(env or {})})
    secrets: Secrets = load_secrets(secret_env or {})
    deps = await build_deps(settings, secrets)
    runner, url = await start_server(settings, secrets, deps)
    return runner, Server(url, settings, deps)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    runner, srv = await running_server()
    try:
        yield srv
    finally:
        await runner.cleanup()


def call_tasks() -> list[asyncio.Task[object]]:
    """Tasks a call session owns (named after their call) that are still alive."""
    prefixes = ("converse-", "reply-", "send-", "discard-")
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefixes) and not t.done()]
