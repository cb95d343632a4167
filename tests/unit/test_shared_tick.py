"""providers.shared_tick: one timer per loop and period for every registered callback."""

from __future__ import annotations

import asyncio

import pytest

from slotline.providers.shared_tick import SharedTick, shared_tick
from tests.until import until


def timers(loop: asyncio.AbstractEventLoop) -> int:
    """Live timers on the loop's heap (asyncio's own list; a cancelled one waits there)."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return sum(not handle.cancelled() for handle in scheduled)


async def test_every_callback_runs_each_period_from_one_timer() -> None:
    loop = asyncio.get_running_loop()
    before = timers(loop)
    tick = SharedTick(loop, 0.01)
    calls: list[str] = []
    first, second = (lambda: calls.append("a")), (lambda: calls.append("b"))
    tick.add(first)
    tick.add(second)
    tick.add(first)  # once only
    assert timers(loop) == before + 1 and len(tick) == 2
    await until(lambda: len(calls) >= 6)
    assert calls[:6] == ["a", "b"] * 3  # in the order added
    tick.discard(first)
    calls.clear()
    await until(lambda: len(calls) >= 2)
    assert set(calls) == {"b"}
    tick.discard(second)
    assert timers(loop) == before  # no callback, no timer


async def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tick = SharedTick(asyncio.get_running_loop(), 0.01)
    calls: list[int] = []

    def broken() -> None:
        raise RuntimeError("bug")

    tick.add(broken)
    tick.add(lambda: calls.append(1))
    await until(lambda: len(calls) >= 3)
    assert len(tick) == 2
    assert "housekeeping callback" in caplog.text and "bug" in caplog.text


async def test_a_callback_discarded_by_another_in_the_same_round_does_not_run() -> None:
    tick = SharedTick(asyncio.get_running_loop(), 0.01)
    calls: list[str] = []

    def later() -> None:
        calls.append("later")

    def remover() -> None:
        calls.append("remover")
        tick.discard(later)

    tick.add(remover)
    tick.add(later)
    await until(lambda: len(calls) >= 2)
    assert calls[:2] == ["remover", "remover"]  # ``later`` went before its turn came
    tick.discard(remover)


async def test_one_tick_per_loop_and_period() -> None:
    assert shared_tick(0.1) is shared_tick(0.1)
    assert shared_tick(0.1) is not shared_tick(0.05)
