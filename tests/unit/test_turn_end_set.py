"""The labelled turn-end set (``python -m bench.turn_end_set``): the clips' labels, the scoring
of cut-offs and false stops, the question table against the shipped flow, and one short run
against a real ``slotline serve`` (two events over the greeting)."""

from __future__ import annotations

import io
import json
import random
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from bench.turn_end_clips import (
    LEAD_IN_MS,
    PAUSE_MS,
    Clip,
    Labels,
    assemble,
    cough,
    draw_pause_ms,
    first_voiced_ms,
    line_noise,
    voiced_bounds,
)
from bench.turn_end_score import (
    Heard,
    Sent,
    asked_kind,
    score_answer,
    score_event,
    summarise,
    table,
)
from bench.turn_end_set import compare, main, plan
from slotline.agent.sim.speech_frames import voiced_span
from slotline.audio.mulaw import decode_array

ROOT = Path(__file__).resolve().parents[2]


def _tone(ms: int, padding_ms: int = 0) -> npt.NDArray[np.int16]:
    """``ms`` of a 300 Hz tone inside ``padding_ms`` of silence on each side (8 kHz)."""
    t = np.arange(ms * 8) / 8000
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    pad = np.zeros(padding_ms * 8, np.int16)
    return np.concatenate((pad, tone, pad))


def _tones(voice: str, text: str) -> npt.NDArray[np.int16]:
    """A stand-in synthesiser: 100 ms of tone per word, padded like a synthesiser pads."""
    return _tone(100 * len(text.split()), padding_ms=150)


def _clip(pieces_ms: tuple[tuple[int, int], ...], interruption: bool | None = None,
          kind: str = "date") -> Clip:
    return Clip("v/t/r0", "v", "t", kind, "x", b"\xff" * 8, Labels(pieces_ms, interruption))


# --- labels ---------------------------------------------------------------------------------

def test_pieces_are_trimmed_to_their_voice_and_the_pauses_are_exactly_the_silence_between() -> None:
    audio, labels = assemble([_tone(400, 200), _tone(300, 120), _tone(500, 80)], [350, 720])
    # each piece keeps 10 ms either side of its voice: the synthesiser's padding is gone
    assert LEAD_IN_MS == 60
    assert labels.pieces_ms == ((60, 480), (830, 1150), (1870, 2390))
    assert [b - a for a, b in labels.pauses_ms] == [350, 720]
    assert labels.end_ms == 2390 and len(audio) == 2390 * 8
    samples = decode_array(audio)
    a, b = labels.pauses_ms[1]
    assert not samples[a * 8:b * 8].any()  # the labelled pause is digital silence
    assert np.abs(samples[labels.end_ms * 8 - 160:labels.end_ms * 8 - 80]).max() > 1000


def test_the_clip_is_put_on_the_callers_clock_by_the_callers_own_voiced_rule() -> None:
    for lead_ms in (0, 35, 210):
        audio, _ = assemble([_tone(300, lead_ms), _tone(200)], [400])
        span = voiced_span(audio)
        assert span is not None and first_voiced_ms(audio) == span[0] * 20
        assert 40 <= first_voiced_ms(audio) <= LEAD_IN_MS


def test_a_silent_piece_or_a_missing_pause_is_refused() -> None:
    with pytest.raises(ValueError, match="silent"):
        assemble([_tone(200), np.zeros(800, np.int16)], [400])
    with pytest.raises(ValueError, match="pauses"):
        assemble([_tone(200), _tone(200)], [])
    assert voiced_bounds(np.zeros(800, np.int16)) is None


def test_pauses_are_drawn_between_300_and_900_ms() -> None:
    rng = random.Random(3)
    drawn = [draw_pause_ms(rng) for _ in range(500)]
    assert min(drawn) >= PAUSE_MS[0] and max(drawn) <= PAUSE_MS[1]
    assert min(drawn) < 350 and max(drawn) > 850  # the whole range, not one corner


def test_coughs_and_noise_are_short_loud_bursts() -> None:
    for seed in range(5):
        for burst in (cough(np.random.default_rng(seed)), line_noise(np.random.default_rng(seed))):
            assert 100 * 8 <= len(burst) <= 700 * 8
            assert np.sqrt(np.mean(burst.astype(np.float64) ** 2)) > 300


def test_the_plan_is_the_same_for_a_seed_and_leaving_calls_out_changes_no_other() -> None:
    full = plan(_tones, ["kal", "slt"], 2, seed=5)
    again = plan(_tones, ["kal", "slt"], 2, seed=5)
    assert [(c.name, [k.audio for k in c.clips]) for c in full] == \
        [(c.name, [k.audio for k in c.clips]) for c in again]
    some = plan(_tones, ["kal", "slt"], 2, seed=5, keep=lambda name: "phone/slt" in name)
    assert [c.name for c in some] == ["phone/slt/r0", "phone/slt/r1"]
    by_name = {c.name: c for c in full}
    assert all(c.clips == by_name[c.name].clips for c in some)
    kinds = [k.kind for c in full if c.name.startswith("booking/") for k in c.clips]
    assert kinds[:5] == ["name", "email", "date", "time", "yes_no"]
    events = {c.clips[0].kind: c.clips[0].labels.interruption for c in full
              if c.event_after_ms is not None}
    assert events == {"backchannel": False, "interruption": True, "cough": False,
                      "noise": False}
    pauses = [b - a for c in full for k in c.clips for a, b in k.labels.pauses_ms]
    assert pauses and all(300 <= p <= 900 for p in pauses)
    slots = [(c.clips[2].text, c.clips[3].text) for c in full if c.name.startswith("booking/")]
    assert len(set(slots)) == len(slots)  # every booking call asks for its own time


def test_a_booking_call_answers_the_question_asked_once_more_with_a_spare_then_hangs_up() -> None:
    call = next(c for c in plan(_tones, ["kal"], 1, seed=5) if c.name == "booking/kal/r0")
    kinds = [k.kind for k in call.clips]
    assert kinds == ["name", "email", "date", "time", "yes_no"] * 2 and call.spares == 5
    assert call.clips[0].template != call.clips[5].template  # the spare is said another way
    unplayed = list(range(10))

    def say(asked: str) -> int | None:
        index = call.choose(asked, unplayed)
        if index is not None:
            unplayed.remove(index)
        return index

    assert say("?") == 0  # the greeting: the flow's first answer
    assert say("date") == 2  # asked out of order: the answer to that question
    assert say("date") == 7  # asked again: the spare
    assert say("date") is None  # a third time: the caller gives up
    assert say("choice") == 1  # a line asking nothing the call answers: the next answer
    assert [say("?"), say("?"), say("?")] == [3, 4, None]  # the spares are only for re-asks


# --- the question each clip is heard with ------------------------------------------------------

def test_every_prompt_of_the_booking_flow_maps_to_its_extractor_kind() -> None:
    flow = yaml.safe_load((ROOT / "config" / "flows" / "demo_booking.yaml").read_text())
    asked = 0
    for node in flow["nodes"].values():
        if node.get("type") != "conversation":
            continue
        for line in (node["say"], node.get("reprompt", "")):
            if line:
                assert asked_kind(line.replace("{user_name}", "Anna")) == node["extractor"], line
                asked += 1
    assert asked >= 8
    assert asked_kind("I can book Monday, December 7th at 2:00 PM. Shall I go ahead?") == "yes_no"
    assert asked_kind("I have 9 AM or 10 AM on Monday. Which works best for you?") == "choice"
    assert asked_kind("Let me check the calendar.") == "?"


# --- scoring --------------------------------------------------------------------------------

PIECES = ((60, 700), (1300, 1900))  # "i'd like ... next tuesday": a 600 ms pause


def test_an_answer_the_server_waited_for_is_clean_and_keeps_its_latency() -> None:
    sent = Sent(_clip(PIECES), start_s=100.0, turn_latency_ms=640.0)
    heard = [Heard(102.7, "i'd like next tuesday", "date", "silence", "normal")]
    outcome = score_answer(sent, 106.0, media_s=[102.55, 102.57], heard=heard)
    assert not outcome.cut_off and outcome.evidence == ""
    assert outcome.turn_latency_ms == 640.0 and outcome.asked == "date"
    assert outcome.pauses_ms == (600,) and outcome.server_turns == 1


@pytest.mark.parametrize(
    ("media_s", "heard_at_s", "evidence"),
    [
        ([101.5], [102.6], "agent audio"),  # the reply started while the caller went on
        ([], [101.25, 102.6], "turn logged"),  # a turn was logged inside the answer
        ([], [101.8, 102.6], "turn logged"),
        ([], [102.1, 103.0], "two turns"),  # logged after the end, but as two turns
    ],
)
def test_an_answer_ended_inside_its_pause_is_a_cut_off(
    media_s: list[float], heard_at_s: list[float], evidence: str
) -> None:
    sent = Sent(_clip(PIECES), start_s=100.0, turn_latency_ms=20.0)
    heard = [Heard(t, "words", "date") for t in heard_at_s]
    outcome = score_answer(sent, 106.0, media_s, heard)
    assert outcome.cut_off and outcome.evidence == evidence
    assert outcome.turn_latency_ms is None  # a cut-off's latency is not a turn latency
    assert outcome.cut_in_pause_ms == 600


def test_turns_outside_the_answers_window_are_not_its_own() -> None:
    sent = Sent(_clip(PIECES), start_s=100.0, turn_latency_ms=500.0)
    heard = [Heard(99.0, "earlier", "name"), Heard(100.5, "the answer before, late", "time"),
             Heard(102.4, "mine", "date"), Heard(107.0, "next answer", "time")]
    outcome = score_answer(sent, 106.0, [], heard)
    assert not outcome.cut_off and outcome.texts == ("mine",)  # its first piece ends at 100.7
    assert outcome.logged_ms == (2400.0,)


def test_a_clear_for_a_backchannel_is_a_false_stop_for_an_interruption_a_barge_in() -> None:
    backchannel = Sent(_clip(((60, 500),), False, "backchannel"), 50.0, over_agent=True)
    assert score_event(backchannel, [50.2], []).stopped
    assert not score_event(backchannel, [49.0, 52.5], []).stopped  # before it / long after it
    interruption = Sent(_clip(((60, 1800),), True, "interruption"), 50.0, over_agent=True)
    outcome = score_event(interruption, [50.31], [Heard(51.9, "wait sorry", "name")])
    assert outcome.stopped and outcome.interruption and outcome.became_turn
    assert outcome.bargein_ms == pytest.approx(250.0)  # from its first voiced frame


def test_a_stop_costs_the_silence_from_its_clear_to_the_next_agent_audio() -> None:
    backchannel = Sent(_clip(((60, 500),), False, "backchannel"), 50.0, over_agent=True)
    resumed = score_event(backchannel, [50.2], [], resumed=True, media_s=[49.9, 50.1, 50.95])
    assert resumed.silence_ms == pytest.approx(750.0)  # audio before the clear does not count
    assert resumed.after_end_ms == pytest.approx(450.0)  # the clip ended at 50.5
    lost = score_event(backchannel, [50.2], [], media_s=[49.9])
    assert lost.stopped and not lost.resumed and lost.silence_ms is None
    assert score_event(backchannel, [], [], media_s=[50.5]).silence_ms is None  # never stopped


def test_the_summary_counts_rates_per_kind_and_per_pause_length() -> None:
    answers = [
        score_answer(Sent(_clip(PIECES), 100.0, 600.0), 106.0, [101.5], []),  # cut in 600
        score_answer(Sent(_clip(PIECES), 100.0, 650.0), 106.0, [], [Heard(102.5, "a", "date")]),
        score_answer(Sent(_clip(((60, 900),), kind="time"), 100.0, 450.0), 106.0, [],
                     [Heard(101.5, "b", "date")]),  # heard with another question
    ]
    over = Sent(_clip(((60, 500),), False, "cough"), 50.0, over_agent=True)
    late = Sent(_clip(((60, 500),), False, "noise"), 50.0, over_agent=False)
    real = Sent(_clip(((60, 1500),), True, "interruption"), 50.0, 0.0, 180.0, True)
    events = [score_event(over, [50.3], [], resumed=True, media_s=[50.9]),
              score_event(late, [], []), score_event(real, [50.24], [])]
    summary = summarise(answers, events)
    cut = summary["cut_off"]
    assert (cut["turns"], cut["cut"], cut["pct"]) == (3, 1, 33.3)
    assert cut["pct_of_turns_with_pauses"] == 50.0
    assert cut["in_step"] == {"turns": 1, "cut": 0, "pct": 0.0}  # the one heard as a date
    assert cut["by_pause"][1] == {"pause_ms": "500-700", "pauses": 2, "cut": 1, "cut_pct": 50.0}
    assert cut["by_template"] == {"t": {"turns": 3, "cut": 1}}
    assert cut["heard_with_another_question"] == 1 and cut["evidence"] == {"agent audio": 1}
    assert summary["turn_latency_ms"]["date"] == {"n": 1, "p50": 650.0, "p95": 650.0}
    stop = summary["false_stop"]
    assert (stop["events"], stop["stopped"], stop["pct"], stop["not_over_agent"]) == \
        (1, 1, 100.0, 1)
    assert stop["stopped_then_resumed"] == 1 and stop["lost"] == 0
    assert stop["silence_after_stop_ms"] == {"n": 1, "p50": 600.0, "p95": 600.0}
    assert stop["resumed_after_end_ms"] == {"n": 1, "p50": 400.0, "p95": 400.0}
    assert summary["interruptions"]["bargein_ms"]["p50"] == 180.0
    text = table(summary)
    assert "1 of 3" in text and "barge-in p50 180 ms" in text


def test_two_runs_side_by_side(tmp_path: Path) -> None:
    before = summarise([score_answer(Sent(_clip(PIECES), 100.0, 600.0), 106.0, [101.5], [])], [])
    after = summarise([score_answer(Sent(_clip(PIECES), 100.0, 420.0), 106.0, [],
                                    [Heard(102.5, "a", "date")])], [])
    for name, summary, commit in (("a", before, "aaa"), ("b", after, "bbb")):
        data = {"commit": commit, "stack": "offline", "summary": summary, "valid": True,
                "harness": {"loop_lag_max_ms": 3.0}}
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    lines = compare([tmp_path / "a.json", tmp_path / "b.json"]).splitlines()
    assert "aaa / offline" in lines[0] and "bbb / offline" in lines[0]
    cut = next(line for line in lines if line.startswith("callers cut off"))
    assert cut.index("1/1 (100.0 %)") < cut.index("0/1 (0.0 %)")
    latency = next(line for line in lines if line.startswith("turn latency date"))
    assert latency.split()[-6:] == ["None", "/", "None", "420.0", "/", "420.0"]


# --- one short run against a real server --------------------------------------------------------

def test_two_events_over_the_greeting_of_a_real_server(tmp_path: Path) -> None:
    out = tmp_path / "set.json"
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        status = main(["--voices", "kal", "--rounds", "1", "--concurrency", "2",
                       "--only", "event/kal/int.wednesday,event/kal/noise", "--out", str(out)])
    data = json.loads(out.read_text())
    assert status == (0 if data["valid"] else 2)
    assert data["calls"] == 2 and data["errors"] == {}
    inter = data["summary"]["interruptions"]
    assert (inter["events"], inter["stopped"]) == (1, 1)  # "wait sorry ..." stops the agent
    assert 0 < inter["bargein_ms"]["p50"] < 2000
    assert data["summary"]["false_stop"]["events"] == 1  # the noise burst, over the greeting
    assert data["harness"]["loop_lag_max_ms"] >= 0 and data["harness"]["cpu_s"] > 0
    assert data["processes"]["server"]["cpu_s"] > 0
    assert "real interruptions stopped the agent" in stdout.getvalue()
