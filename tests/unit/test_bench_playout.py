"""What the caller hears as silence inside an agent turn: underruns mid-sentence vs pauses
between sentences (after a mark). Sans-I/O: the playout is driven with explicit times, and
like the caller, ``advance(now)`` comes before anything else that happens at ``now``."""

from __future__ import annotations

import pytest

from slotline.agent.sim.playout import AgentTurnLog, Playout

MS = 0.001


def test_audio_running_dry_mid_sentence_is_an_underrun() -> None:
    playout, turn = Playout(0.0), AgentTurnLog()
    playout.push_audio(turn, 160, 0.0)  # 20 ms
    playout.advance(35 * MS)  # dry since 20 ms
    playout.advance(50 * MS)
    playout.push_audio(turn, 160, 50 * MS)
    assert turn.gaps_ms == [pytest.approx(30.0)] and turn.pauses_ms == []
    playout.advance(65 * MS)
    playout.push_audio(turn, 160, 65 * MS)  # arrived while still playing: no silence
    assert len(turn.gaps_ms) == 1
    assert len(turn.freeze().gaps_ms) == 1 and turn.freeze().gaps_ms[0] == pytest.approx(30.0)


def test_silence_after_a_mark_is_a_pause_between_sentences() -> None:
    playout, turn = Playout(0.0), AgentTurnLog()
    playout.push_audio(turn, 160, 0.0)
    assert not playout.push_mark("sentence-1", turn)  # behind the audio
    assert playout.advance(40 * MS) == ["sentence-1"]
    playout.advance(100 * MS)
    playout.push_audio(turn, 160, 100 * MS)
    assert turn.pauses_ms == [pytest.approx(80.0)] and turn.gaps_ms == []
    # a mark that arrives after its audio has played also ends the sentence
    playout.advance(200 * MS)  # sentence 2 ran dry at 120 ms; its mark comes now
    assert playout.push_mark("sentence-2", turn)
    playout.advance(250 * MS)
    playout.push_audio(turn, 160, 250 * MS)
    assert turn.pauses_ms[-1] == pytest.approx(130.0) and turn.gaps_ms == []


def test_no_silence_is_counted_across_turns_or_after_a_clear() -> None:
    playout, first, second = Playout(0.0), AgentTurnLog(), AgentTurnLog()
    playout.push_audio(first, 160, 0.0)
    playout.advance(100 * MS)
    playout.push_audio(second, 160, 100 * MS)  # the next turn's first audio: turn latency
    playout.advance(105 * MS)
    playout.clear(105 * MS)
    playout.advance(200 * MS)
    playout.push_audio(second, 160, 200 * MS)  # after a clear: a new start
    assert first.gaps_ms == second.gaps_ms == [] and second.pauses_ms == []
    playout.push_audio(first, 160, None)  # no time given: nothing recorded
    assert first.gaps_ms == []
