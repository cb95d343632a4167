"""``server.event_loop``: which loop ``slotline serve`` and the benchmark's processes run on."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from slotline.agent.config import load_settings
from slotline.agent.server import event_loop
from slotline.providers.errors import ConfigError


async def _kind() -> str:
    return event_loop.loop_name(asyncio.get_running_loop())


def test_auto_runs_on_uvloop_where_it_is_installed_and_asyncio_when_asked() -> None:
    assert event_loop.run(_kind()) == "uvloop"
    assert event_loop.run(_kind(), "uvloop") == "uvloop"
    assert event_loop.run(_kind(), "asyncio") == "asyncio"
    loop = event_loop.new_event_loop("auto")
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_loop_is_the_threads_current_one_while_it_runs_and_not_after() -> None:
    async def current() -> bool:
        return asyncio.get_event_loop_policy().get_event_loop() is asyncio.get_running_loop()

    assert event_loop.run(current()) and event_loop.run(current(), "asyncio")
    with pytest.raises(RuntimeError, match="no current event loop"):
        asyncio.get_event_loop_policy().get_event_loop()


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: imports fail
    assert not event_loop.uvloop_installed()
    assert event_loop.run(_kind()) == "asyncio"
    main = _kind()
    with pytest.raises(ConfigError, match="server.event_loop: uvloop is not installed"):
        event_loop.run(main, "uvloop")
    assert main.cr_frame is None  # closed, never left pending ("never awaited")


def test_the_setting_takes_the_three_choices_and_nothing_else() -> None:
    assert load_settings(None, {}).server.event_loop == "auto"
    for choice in ("auto", "uvloop", "asyncio"):
        env = {"SLOTLINE_SERVER__EVENT_LOOP": choice}
        assert load_settings(None, env).server.event_loop == choice
    with pytest.raises(ConfigError, match="event_loop"):
        load_settings(None, {"SLOTLINE_SERVER__EVENT_LOOP": "tornado"})
