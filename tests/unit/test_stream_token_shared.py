"""Stream tokens are single use across processes (issue 17): a token admitted by one worker or
server is refused by every other one sharing the store, on SQLite and PostgreSQL, and over real
sockets between two servers of one store."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import WSCloseCode

from slotline.agent.server.stream_token import StreamTokens, key_from_auth_token
from slotline.agent.store import open_store
from tests.e2e.conftest import Server, running_server
from tests.unit.test_stream_token import (
    AUTH_TOKEN,
    CALL_A,
    Clock,
    _open_stream,
    _twiml_parameters,
)


async def test_a_token_admitted_by_one_process_is_replayed_on_another(store_url: str) -> None:
    clock = Clock()
    wall = lambda: datetime.fromtimestamp(clock.now_s, UTC)  # noqa: E731
    key = key_from_auth_token(AUTH_TOKEN)
    first, second = (StreamTokens(key, lifetime_s=60, now_s=clock) for _ in range(2))
    async with open_store(store_url, clock=wall) as store:
        token = first.issue(CALL_A)
        assert await second.admit_once(CALL_A, token, store.stream_nonces) is None
        # the issuing process never saw it admitted: only the shared table knows
        assert await first.admit_once(CALL_A, token, store.stream_nonces) == "replayed"
        assert await second.admit_once(CALL_A, token, store.stream_nonces) == "replayed"
        # refusals before the claim do not use up anything
        other = first.issue(CALL_A)
        assert await first.admit_once("CA" + "f" * 32, other, store.stream_nonces) == "forged"
        assert await second.admit_once(CALL_A, other, store.stream_nonces) is None


async def test_expired_nonces_are_forgotten(store_url: str) -> None:
    clock = Clock()
    wall = lambda: datetime.fromtimestamp(clock.now_s, UTC)  # noqa: E731
    async with open_store(store_url, clock=wall) as store:
        assert await store.stream_nonces.claim("n1", clock.now_s + 60)
        assert not await store.stream_nonces.claim("n1", clock.now_s + 60)
        clock.now_s += 120  # n1's token has expired: its row goes with the next claim
        assert await store.stream_nonces.claim("n2", clock.now_s + 60)
        assert await store.stream_nonces.claim("n1", clock.now_s + 60)


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[Server, Server]]:
    folder = tempfile.mkdtemp(prefix="slotline-shared-")
    env = {"SLOTLINE_STORE__URL": f"sqlite:///{folder}/shared.db"}
    secret_env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    first_runner, first = await running_server(env, secret_env)
    second_runner, second = await running_server(env, secret_env)
    try:
        yield first, second
    finally:
        await second_runner.cleanup()
        await first_runner.cleanup()


async def test_a_stream_replayed_to_another_server_of_the_store_is_refused(
    two_servers: tuple[Server, Server],
) -> None:
    first, second = two_servers
    async with aiohttp.ClientSession() as http:
        parameters = await _twiml_parameters(http, first, CALL_A)
        assert await _open_stream(http, first, CALL_A, parameters) == (True, None)
        replayed = await _open_stream(http, second, CALL_A, parameters)
    assert replayed == (False, WSCloseCode.POLICY_VIOLATION)
    assert second.deps.call_log.get(CALL_A) is None
