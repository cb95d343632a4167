"""Call recordings end to end: a real server records a whole booking call by voice, with one
barge-in; the recording, fetched through the API, is checked against what the simulated caller
sent and heard — the caller's audio on the left at the offsets it was sent, the agent's on the
right at the offsets it was heard, and nothing of the interrupted reply after the ``clear``."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt

from slotline.agent.sim.caller import CallerReport, Speak, run_caller, voiced_span
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav
from slotline.agent.sim.playout import AgentTurn
from slotline.audio.mulaw import decode_array
from tests.e2e.conftest import running_server
from tests.until import until

RATE_HZ = 8000
FRAME_S = 0.02
TOLERANCE_S = 0.040  # the brief: offsets within ±40 ms
TOKEN = "recording-test-token"
Signal = npt.NDArray[np.float64]


def decoded(ulaw: bytes) -> Signal:
    return decode_array(ulaw).astype(np.float64)


def locate(signal: Signal, template: Signal, lo: int, hi: int) -> tuple[int, float]:
    """Where in ``signal[lo:hi]`` ``template`` starts, by normalised cross-correlation, and
    the correlation there (1.0: the very same samples)."""
    lo, hi = max(lo, 0), min(hi, len(signal) - len(template))
    assert hi >= lo, "the search window is outside the recording"
    window, m = signal[lo : hi + len(template)], len(template)
    size = 1 << (len(window) + m).bit_length()
    spectrum = np.fft.rfft(window, size) * np.conj(np.fft.rfft(template, size))
    corr = np.fft.irfft(spectrum, size)[: len(window) - m + 1]
    energy = np.concatenate(([0.0], np.cumsum(window * window)))
    local = np.sqrt(np.maximum(energy[m:] - energy[:-m], 1e-9))
    score = corr / (local * np.linalg.norm(template))
    best = int(np.argmax(score))
    return lo + best, float(score[best])


def agent_turn_starts(report: CallerReport) -> list[tuple[AgentTurn, float]]:
    """Each agent turn and when (the caller's monotonic clock) its first audio arrived and so
    began to play: the greeting first, then the reply to each caller turn."""
    assert report.first_agent_audio_at_s is not None
    starts = [(report.agent_turns[0], report.first_agent_audio_at_s)]
    for turn in report.turns:
        assert turn.reply is not None and turn.ended_at_s is not None
        assert turn.turn_latency_ms is not None
        starts.append((turn.reply, turn.ended_at_s + turn.turn_latency_ms / 1000))
    assert [id(t) for t, _ in starts] == [id(t) for t in report.agent_turns]
    return starts


async def test_the_recording_holds_what_each_side_said_and_heard_where_they_did(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "recordings"
    env = {"SLOTLINE_RECORDING__ENABLED": "true", "SLOTLINE_RECORDING__FOLDER": str(folder)}
    runner, server = await running_server(env, {"SLOTLINE_API_TOKEN": TOKEN})
    script: list[Speak] = [
        Speak(caller_wav("interrupt").audio, interrupt_after_ms=2500),  # over the greeting
        *(caller_wav(u.stem) for u in DEMO_SCRIPT),
    ]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            report = await run_caller(server.media_url, script, session=http)
            call_url = f"{server.url}/api/calls/{report.call_sid}"

            async def has_recording() -> bool:  # written in the background after the call
                async with http.get(call_url, headers=auth) as response:
                    return "recording" in await response.json()

            await until(has_recording)
            async with http.get(call_url, headers=auth) as response:
                call = await response.json()
            async with http.get(f"{call_url}/recording") as response:
                assert response.status == 401  # behind the API's auth like the rest of /api
            async with http.get(f"{server.url}/api/calls/CAnone/recording",
                                headers=auth) as response:
                assert response.status == 404
            async with http.get(f"{server.url}{call['recording']}", headers=auth) as response:
                assert response.status == 200
                assert response.content_type == "audio/wav"
                body = await response.read()
        assert server.deps.store is not None
        stored = await server.deps.store.recordings.get(report.call_sid)
    finally:
        await runner.cleanup()

    assert report.errors == () and report.closed_by == "server"  # booked, said goodbye
    assert call["node"] == "goodbye" and len(call["bookings"]) == 1
    assert call["recording"] == f"/api/calls/{report.call_sid}/recording"
    with wave.open(io.BytesIO(body), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE_HZ)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = pcm[:, 0].astype(np.float64), pcm[:, 1].astype(np.float64)
    assert stored is not None and Path(stored.path).parent.parent == folder
    assert stored.path.endswith(f"/{report.call_sid}.wav")
    assert abs(stored.duration_s - len(pcm) / RATE_HZ) < 0.001
    assert abs(len(pcm) / RATE_HZ - report.duration_s) < 1.0

    # The caller's utterances, on the left. The first one fixes where the recording starts on
    # the caller's clock; every other offset, on both channels, must then agree with it.
    def sent_at(index: int) -> float:
        """When (caller's clock) the utterance's first frame was sent."""
        turn, audio = report.turns[index], script[index].audio
        span = voiced_span(audio)
        assert turn.first_voiced_at_s is not None and span is not None
        return turn.first_voiced_at_s - span[0] * FRAME_S

    found, score = locate(left, decoded(script[0].audio), 0, len(left))
    assert score > 0.99
    origin_s = sent_at(0) - found / RATE_HZ  # the caller's clock at the recording's start
    assert -TOLERANCE_S < origin_s - report.started_at_s < 0.5  # it starts with the call
    for index in range(1, len(script)):
        found, score = locate(left, decoded(script[index].audio), 0, len(left))
        assert score > 0.99, index
        assert abs(found / RATE_HZ - (sent_at(index) - origin_s)) <= TOLERANCE_S, index

    # The agent's turns, on the right: each starts where the caller began to hear it, and holds
    # exactly the audio the caller heard (silence aside: pauses between sentences are silent).
    starts = agent_turn_starts(report)
    ends = [round((at - origin_s - TOLERANCE_S) * RATE_HZ) for _, at in starts[1:]] + [len(right)]
    for (turn, at), end in zip(starts, ends, strict=True):
        expected = round((at - origin_s) * RATE_HZ)
        opening = decoded(turn.audio[:2000])  # its first 250 ms
        found, score = locate(right, opening, expected - RATE_HZ, expected + RATE_HZ)
        assert score > 0.95
        assert abs(found - expected) <= TOLERANCE_S * RATE_HZ, (found, expected)
        recorded = right[found:end]
        recorded = recorded[recorded != 0]
        sent = decoded(turn.audio)
        sent = sent[sent != 0]
        assert np.array_equal(recorded, sent[: len(recorded)])  # in order, nothing else
        if not turn.interrupted:
            assert turn.heard_ms == turn.audio_ms and len(recorded) == len(sent)
    # The interrupted greeting: heard up to the clear, and nothing of it after.
    greeting, at = starts[0]
    barge_in = report.turns[0]
    assert greeting.interrupted and 0 < greeting.heard_ms < greeting.audio_ms
    assert barge_in.barge_in and barge_in.bargein_ms is not None
    assert barge_in.first_voiced_at_s is not None
    cleared = round((barge_in.first_voiced_at_s + barge_in.bargein_ms / 1000 - origin_s)
                    * RATE_HZ)
    assert not right[cleared + round(TOLERANCE_S * RATE_HZ) : ends[0]].any()  # silent after
    greeting_heard = decoded(greeting.audio[: round(greeting.heard_ms * 8)])
    in_recording = right[max(0, round((at - origin_s - TOLERANCE_S) * RATE_HZ)) : ends[0]]
    # as much of it as the caller heard, to within the clear's ±40 ms
    assert abs(np.count_nonzero(in_recording) - np.count_nonzero(greeting_heard)) <= (
        TOLERANCE_S * RATE_HZ
    )
