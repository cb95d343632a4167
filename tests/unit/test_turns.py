from __future__ import annotations

from agent.turns import (
    BargeIn,
    SpeechDropped,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnState,
    transition_table,
)

CFG = TurnConfig(min_speech_ms=120, end_silence_ms=600, bargein_min_speech_ms=300,
                 max_turn_ms=5_000)


def feed(det: TurnDetector, pattern: str, start_ms: int = 0) -> list[tuple[int, TurnEvent]]:
    """'#' = voiced frame, '.' = silent frame; returns (frame time, event) pairs."""
    out = []
    for i, ch in enumerate(pattern):
        t = start_ms + i * 20
        ev = det.frame(ch == "#", t)
        if ev is not None:
            out.append((t, ev))
    return out


def test_turn_starts_after_min_speech_and_ends_after_silence() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "." * 5 + "#" * 20 + "." * 40)
    assert [type(e) for _, e in events] == [SpeechStarted, TurnEnded]
    started, ended = events[0][1], events[1][1]
    assert isinstance(started, SpeechStarted) and started.first_voiced_ms == 100
    assert isinstance(ended, TurnEnded)
    assert ended.last_voiced_ms == 100 + 19 * 20
    # decided exactly end_silence_ms after the end of the last voiced frame
    assert ended.at_ms - (ended.last_voiced_ms + 20) == 600
    assert det.state is TurnState.LISTENING


def test_short_click_never_starts_a_turn() -> None:
    det = TurnDetector(CFG)
    assert feed(det, "##" + "." * 60 + "#" + "." * 60) == []


def test_gap_inside_onset_is_tolerated_but_long_gap_resets() -> None:
    det = TurnDetector(CFG)
    # 4 voiced, 2 silent (40 ms < onset gap), 2 voiced -> 120 ms of speech: a turn starts
    assert [type(e) for _, e in feed(det, "####..##")] == [SpeechStarted]
    det2 = TurnDetector(CFG)
    # 4 voiced, 5 silent (100 ms > onset gap) resets, 2 voiced is not enough
    assert feed(det2, "####.....##") == []


def test_pause_shorter_than_end_silence_keeps_the_turn() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "#" * 10 + "." * 25 + "#" * 10 + "." * 31)
    assert [type(e) for _, e in events] == [SpeechStarted, TurnEnded]


def test_barge_in_only_while_agent_speaks_and_after_min_length() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    events = feed(det, "#" * 20 + "." * 31)
    kinds = [type(e) for _, e in events]
    assert kinds == [SpeechStarted, BargeIn, TurnEnded]
    t_barge, barge = events[1]
    assert isinstance(barge, BargeIn) and barge.at_ms - barge.first_voiced_ms == 300


def test_backchannel_while_agent_speaks_is_dropped() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    events = feed(det, "#" * 10 + "." * 31)  # 200 ms "uh-huh"
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechDropped]
    assert det.state is TurnState.LISTENING


def test_max_turn_forces_an_end() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "#" * 300)
    ended = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(ended) == 1 and ended[0].forced


def test_table_lists_every_transition() -> None:
    rows = transition_table()
    assert ("listening", "speech reached min_speech_ms", "speaking") in rows
    assert len(rows) == 5
