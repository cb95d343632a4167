"""Issue 17 defect 6: a warning repeated per malformed message is limited per call and per code,
and what was held back is reported as a count."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Iterator

import pytest

from slotline.agent import logs
from slotline.agent.logs import RateLimitFilter
from slotline.providers.errors import ProtocolError

# The warning the session writes for every message the media socket drops.
DROPPED = "dropped bad message call_sid=%s: %s"
SUPPRESSED = re.compile(r"suppressed (\d+) similar messages \(code ([^)]*)\) call_sid=(\S+)")


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s



@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, list[RateLimitFilter]]]:
    """A logger of its own with a real stream handler; the test adds its limiter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test.rate_limit")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [handler]
    added: list[RateLimitFilter] = []
    try:
        yield logger, stream, added
    finally:
        for limiter in added:
            handler.removeFilter(limiter)
        logger.handlers[:] = []
        logger.propagate = True


def _limited(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]], limiter: RateLimitFilter
) -> tuple[logging.Logger, io.StringIO, RateLimitFilter]:
    logger, stream, added = captured
    logger.handlers[0].addFilter(limiter)
    added.append(limiter)
    return logger, stream, limiter


def _suppressed(text: str) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for count, code, call_sid in SUPPRESSED.findall(text):
        counts[(call_sid, code)] = counts.get((call_sid, code), 0) + int(count)
    return counts


def test_a_flood_through_configure_becomes_a_few_lines_and_a_count(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("WARNING")
    session = logging.getLogger("slotline.agent.call.session")
    flood = ProtocolError("bad_json", "Expecting value: line 1 column 1 (char 0)")
    for _ in range(100_000):
        session.warning(DROPPED, "CAflood", flood)
    for _ in range(3):  # another call, and another code on the flooded call, still get through
        session.warning(DROPPED, "CAquiet", flood)
        session.warning(DROPPED, "CAflood", ProtocolError("binary_frame", "text frames only"))
    logs.call_ended("CAflood")
    err = capsys.readouterr().err
    lines = err.splitlines()
    flood_lines = [line for line in lines if "call_sid=CAflood: bad_json" in line]
    # 5 per 10 s window; the loop takes well under a window, but a slow machine may roll one.
    assert 5 <= len(flood_lines) <= 15
    counts = _suppressed(err)
    assert len(flood_lines) + counts[("CAflood", "bad_json")] == 100_000
    assert sum("call_sid=CAquiet: bad_json" in line for line in lines) == 3
    assert sum("call_sid=CAflood: binary_frame" in line for line in lines) == 3
    assert ("CAquiet", "bad_json") not in counts  # nothing of it was held back
    assert len(lines) < 40


def test_the_count_is_reported_when_the_window_rolls(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    clock = FakeClock()
    logger, stream, _ = _limited(captured, RateLimitFilter(max_lines=5, window_s=10.0, clock=clock))
    for number in range(12):
        logger.warning(DROPPED, "CA1", ProtocolError("bad_json", f"message {number}"))
    clock.now_s += 10.5
    logger.warning(DROPPED, "CA1", ProtocolError("bad_json", "message 12"))
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[1] for line in lines[:5]] == ["0", "1", "2", "3", "4"]
    assert lines[5] == (
        "WARNING test.rate_limit: suppressed 7 similar messages (code bad_json) call_sid=CA1"
    )
    assert lines[6].endswith("message 12")  # a new window: the message itself again
    assert len(lines) == 7


def test_a_stopped_flood_is_reported_by_the_next_line_after_its_window(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    clock = FakeClock()
    logger, stream, _ = _limited(captured, RateLimitFilter(max_lines=2, window_s=10.0, clock=clock))
    for _ in range(50):
        logger.warning("stt stalled call_sid=%s", "CA2", extra={"code": "stt_stall"})
    clock.now_s += 11.0
    logger.error("unrelated trouble")  # any record wakes the reporting of rolled windows
    assert _suppressed(stream.getvalue()) == {("CA2", "stt_stall"): 48}
    assert stream.getvalue().splitlines()[-1] == "ERROR test.rate_limit: unrelated trouble"


def test_lines_below_the_limited_level_are_never_held_back(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    logger, stream, _ = _limited(
        captured, RateLimitFilter(max_lines=2, window_s=10.0, clock=FakeClock())
    )
    for turn in range(20):
        logger.info("caller turn call_sid=%s words=%d", "CA3", turn)
    assert len(stream.getvalue().splitlines()) == 20


def test_messages_without_a_code_are_keyed_by_their_format(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    logger, stream, limiter = _limited(
        captured, RateLimitFilter(max_lines=1, window_s=10.0, clock=FakeClock())
    )
    for _ in range(4):
        logger.warning("tts failed call_sid=%s; speaking with the fallback", "CA4")
        logger.warning("provider error call_sid=%s: %s", "CA4", "timeout")
    limiter.flush()
    text = stream.getvalue()
    lines = text.splitlines()
    assert lines[:2] == [
        "WARNING test.rate_limit: tts failed call_sid=CA4; speaking with the fallback",
        "WARNING test.rate_limit: provider error call_sid=CA4: timeout",
    ]
    assert _suppressed(text) == {
        ("CA4", "tts failed call_sid=%s; speaking with the fallback"): 3,
        ("CA4", "provider error call_sid=%s: %s"): 3,
    }
    assert len(lines) == 4


def test_memory_is_bounded_and_evicted_counts_are_not_lost(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    logger, stream, limiter = _limited(
        captured, RateLimitFilter(max_lines=1, window_s=10.0, max_keys=3, clock=FakeClock())
    )
    for call in range(50):
        for _ in range(4):
            logger.warning(DROPPED, f"CA{call:02d}", ProtocolError("bad_json", "x"))
        assert limiter.tracked_keys <= 3
    limiter.flush()
    counts = _suppressed(stream.getvalue())
    assert counts == {(f"CA{call:02d}", "bad_json"): 3 for call in range(50)}
    assert limiter.tracked_keys == 0


def test_threads_logging_together_lose_no_count(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    logger, stream, limiter = _limited(
        captured, RateLimitFilter(max_lines=5, window_s=10.0, clock=FakeClock())
    )
    error = ProtocolError("bad_json", "x")

    def flood() -> None:
        for _ in range(10_000):
            logger.warning(DROPPED, "CA5", error)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    limiter.flush("CA5")
    text = stream.getvalue()
    assert text.count("call_sid=CA5: bad_json") == 5
    assert _suppressed(text) == {("CA5", "bad_json"): 39_995}


def test_a_flood_spread_over_many_calls_shares_one_budget_per_code(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    """A fuzzer opening socket after socket stays under each call's budget, not the code's."""
    clock = FakeClock()
    logger, stream, limiter = _limited(captured, RateLimitFilter(clock=clock))
    for call in range(1000):
        for _ in range(3):
            logger.warning(DROPPED, f"CA{call:04d}", ProtocolError("binary_frame", "binary"))
    clock.now_s += logs.RATE_LIMIT_WINDOW_S + 1
    limiter.flush()
    lines = stream.getvalue().splitlines()
    dropped = [line for line in lines if "dropped bad message" in line]
    assert len(dropped) == logs.RATE_LIMIT_LINES * logs.ALL_CALLS_FACTOR
    across = re.findall(r"suppressed (\d+) similar messages \(code binary_frame\) across calls",
                        stream.getvalue())
    assert [int(n) for n in across] == [3000 - len(dropped)]


def test_many_codes_over_many_short_calls_stay_bounded_and_lose_no_count(
    captured: tuple[logging.Logger, io.StringIO, list[RateLimitFilter]],
) -> None:
    """The 1M-message fuzz: thousands of short calls, each breaking a dozen things and ending
    (its own counts reported at its end). Lines stay bounded by the all-codes budget plus one
    summary per code; every held-back line is still counted somewhere."""
    clock = FakeClock()
    logger, stream, limiter = _limited(captured, RateLimitFilter(clock=clock))
    codes = [f"code_{n}" for n in range(12)]
    sent = 0
    for call in range(2000):
        call_sid = f"CA{call:05d}"
        for code in codes:
            for _ in range(8):  # over one call's budget of 5
                logger.warning(DROPPED, call_sid, ProtocolError(code, "bad"))
                sent += 1
        limiter.flush(call_sid)  # the call ends
    clock.now_s += logs.RATE_LIMIT_WINDOW_S + 1
    limiter.flush()
    lines = stream.getvalue().splitlines()
    budget = logs.RATE_LIMIT_LINES * logs.ALL_CALLS_FACTOR * logs.ALL_CODES_FACTOR
    assert len(lines) <= budget + len(codes)
    passed = sum("dropped bad message" in line for line in lines)
    held = sum(int(n) for n in re.findall(r"suppressed (\d+) similar", stream.getvalue()))
    assert passed + held == sent
