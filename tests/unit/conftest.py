"""Fixtures shared by the store, booking-service and session tests."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from slotline.agent.store.scratch import scratch_store_url
from slotline.agent.store.url import Dialect

if TYPE_CHECKING:
    from slotline.providers.stt.local import LocalSpeechToText
    from tests.radicale_server import RadicaleServer

# The machine's PostgreSQL (trust auth); each test gets a scratch database dropped afterwards.
POSTGRES_ADMIN_URL = os.environ.get(
    "SLOTLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL, once on SQLite and once on PostgreSQL."""
    dialect: Dialect = request.param
    async with scratch_store_url(
        dialect, directory=tmp_path, postgres_admin_url=POSTGRES_ADMIN_URL
    ) as url:
        yield url


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """``agent.logs.configure()`` replaces the root logger's handlers; put the test runner's
    back after (the logging tests)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    """A Radicale CalDAV server with the vendor tests' user, one per test module (the vendor
    look-up and booking tests start their emulators on it: ``tests.e2e.providers``)."""
    from tests.e2e.providers import CALDAV_USERS
    from tests.radicale_server import running_radicale

    with running_radicale(tmp_path_factory.mktemp("radicale"), users=CALDAV_USERS) as server:
        yield server


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """What a test opens (emulators, stores), closed after it."""
    async with AsyncExitStack() as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recognizer() -> AsyncIterator[LocalSpeechToText]:
    """The offline recogniser, one per test module (its tests run on the module's loop:
    ``pytest.mark.asyncio(loop_scope="module")``); a module may define its own."""
    from slotline.providers.stt.local import LocalSpeechToText

    async with LocalSpeechToText() as provider:
        yield provider


async def warm(provider: LocalSpeechToText) -> None:
    """Decode one utterance, as a running server's recogniser has after its first call.
    pocketsphinx decodes an utterance differently depending on what its worker decoded before
    (its live cepstral mean, and more): a fresh worker heard the bundled "yes", flushed
    ~120 ms after its last sound, as "net", and so did the module's shared one after some
    other tests' calls; after "my name is john smith" alone, as "yes". A test asserting the
    words of a short, cut utterance uses a recogniser of its own, warmed with this."""
    from slotline.agent.sim.caller import load_wav_ulaw
    from slotline.audio.mulaw import ulaw_to_pcm16
    from slotline.providers.base import SpeechHints

    john = Path(__file__).parents[2] / "agent" / "assets" / "caller" / "name_john.wav"
    await provider.decode(ulaw_to_pcm16(load_wav_ulaw(john)), SpeechHints())
