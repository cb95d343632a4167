"""The simulated caller against a tiny Twilio-protocol agent served over a real WebSocket.

The fake agent lives in this file: it greets, detects the end of the caller's voiced frames,
answers after a known delay with audio and a mark, and can clear (barge-in) or hang up. Timings
are checked loosely (the machine is shared); what is checked exactly is behaviour and order.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from slotline.agent.sim.caller import (
    PressDigit,
    Speak,
    last_voiced_frame,
    load_wav_ulaw,
    run_caller,
)
from slotline.audio.mulaw import decode_array, encode_array
from slotline.providers.telephony.twilio_media import (
    Connected,
    Dtmf,
    InboundStream,
    MarkEcho,
    Media,
    Start,
    Stop,
    encode_clear,
    encode_mark,
    encode_media,
)
from tests.loopback import serving_ws

SILENCE = b"\xff" * 160
SID_SHAPE = re.compile(r"^(CA|MZ|AC)[0-9a-f]{32}$")


def tone(ms: int, amplitude: float = 8000.0, freq_hz: float = 440.0) -> bytes:
    t = np.arange(ms * 8) / 8000
    return encode_array((amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16))


# 200 ms of speech then 100 ms of silence inside the utterance: the last voiced frame is #9.
UTTERANCE = tone(200) + SILENCE * 5


@dataclass
class FakeAgent:
    greeting: list[tuple[str, int | str]] = field(default_factory=list)  # ("audio", ms)|("mark", n)
    reply_ms: int | None = 300  # None: never answers
    reply_delay_ms: int = 120
    clear_after_ms: int | None = None  # clear this long after the greeting was sent
    bargein_frames: int | None = None  # clear after this many voiced frames over our audio
    close_after_frames: int | None = None  # hang up after receiving this many media frames
    # what happened, with monotonic arrival/send times
    start: Start | None = None
    stop: Stop | None = None
    sequence_numbers: list[int] = field(default_factory=list)
    frames: list[tuple[Media, float]] = field(default_factory=list)
    echoes: list[tuple[str, float]] = field(default_factory=list)
    digits: list[tuple[str, float]] = field(default_factory=list)
    marks_sent: dict[str, float] = field(default_factory=dict)  # mark -> when its audio was sent
    replies: list[tuple[float, float]] = field(default_factory=list)  # (turn end seen, reply sent)
    clears_sent: list[float] = field(default_factory=list)
    first_voiced: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        stream = InboundStream()
        voiced_run, last_voiced_s, replies = 0, 0.0, 0
        async with asyncio.TaskGroup() as tasks:
            async for msg in ws:
                now = time.monotonic()
                if msg.type is not WSMsgType.TEXT:
                    continue
                event = stream.receive(msg.data)
                if not isinstance(event, Connected):
                    self.sequence_numbers.append(event.sequence_number)
                if isinstance(event, Start):
                    self.start = event
                    tasks.create_task(self._speak(ws, self.greeting, event.stream_sid))
                    if self.clear_after_ms is not None:
                        tasks.create_task(self._clear_later(ws, event.stream_sid))
                elif isinstance(event, Media):
                    self.frames.append((event, now))
                    if event.payload != SILENCE:
                        voiced_run += 1
                        last_voiced_s = now
                        if voiced_run == 1:
                            self.first_voiced.append(now)
                        unechoed = set(self.marks_sent) - {name for name, _ in self.echoes}
                        if voiced_run == self.bargein_frames and unechoed:
                            self.clears_sent.append(time.monotonic())
                            await ws.send_str(encode_clear(event.stream_sid))
                    elif voiced_run:
                        voiced_run = 0
                        replies += 1
                        tasks.create_task(self._reply(ws, event.stream_sid, last_voiced_s, replies))
                    if len(self.frames) == self.close_after_frames:
                        await ws.close()
                elif isinstance(event, MarkEcho):
                    self.echoes.append((event.name, now))
                elif isinstance(event, Dtmf):
                    self.digits.append((event.digit, now))
                    replies += 1
                    tasks.create_task(self._reply(ws, event.stream_sid, now, replies))
                elif isinstance(event, Stop):
                    self.stop = event
        return ws

    async def _speak(
        self, ws: web.WebSocketResponse, items: list[tuple[str, int | str]], sid: str
    ) -> None:
        sent_s = time.monotonic()
        for kind, value in items:
            if ws.closed:
                return
            if kind == "audio":
                sent_s = time.monotonic()
                await ws.send_str(encode_media(sid, tone(int(value), freq_hz=300.0)))
            else:
                self.marks_sent[str(value)] = sent_s
                await ws.send_str(encode_mark(sid, str(value)))

    async def _reply(self, ws: web.WebSocketResponse, sid: str, turn_end_s: float, k: int) -> None:
        if self.reply_ms is None:
            return
        await asyncio.sleep(self.reply_delay_ms / 1000)
        if not ws.closed:
            self.replies.append((turn_end_s, time.monotonic()))
            await self._speak(ws, [("audio", self.reply_ms), ("mark", f"reply-{k}")], sid)

    async def _clear_later(self, ws: web.WebSocketResponse, sid: str) -> None:
        assert self.clear_after_ms is not None
        await asyncio.sleep(self.clear_after_ms / 1000)
        self.clears_sent.append(time.monotonic())
        await ws.send_str(encode_clear(sid))


def serve(agent: FakeAgent) -> contextlib.AbstractAsyncContextManager[str]:
    return serving_ws(agent.handle, "/twilio/media")


def echo_time(agent: FakeAgent, name: str) -> float:
    return next(t for n, t in agent.echoes if n == name)


def caller_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("caller-")]


# keep_audio False: the bench's counted audio; awaited_sends: frames sent from the call's task
# (where aiohttp's writer cannot be reached), not from the shared clock's timer
@pytest.mark.parametrize(("keep_audio", "awaited_sends"), [(True, False), (False, False),
                                                           (True, True)])
async def test_conversation_pacing_marks_latency_and_dtmf(
    keep_audio: bool, awaited_sends: bool
) -> None:
    agent = FakeAgent(greeting=[("audio", 200), ("mark", "greeting")])
    async with serve(agent) as url:
        report = await run_caller(
            url,
            [Speak(UTTERANCE, pause_ms=50), PressDigit("5", pause_ms=50)],
            custom_parameters={"flow": "demo_booking"},
            headers={"X-Test": "1"},
            agent_quiet_ms=100,
            timeout_s=20,
            keep_audio=keep_audio,
            awaited_sends=awaited_sends,
        )
    assert report.errors == ()
    assert report.closed_by == "caller"
    assert all(SID_SHAPE.match(s) for s in (report.call_sid, report.stream_sid, report.account_sid))
    assert agent.start is not None and agent.stop is not None
    assert dict(agent.start.custom_parameters) == {"flow": "demo_booking"}
    assert (agent.start.call_sid, agent.stop.call_sid) == (report.call_sid, report.call_sid)

    # every message numbered in order; media chunks and timestamps follow the 20 ms grid
    assert agent.sequence_numbers == list(range(1, len(agent.sequence_numbers) + 1))
    chunks = [m.chunk for m, _ in agent.frames]
    assert chunks == list(range(1, len(chunks) + 1))
    assert [m.timestamp_ms for m, _ in agent.frames] == [20 * (c - 1) for c in chunks]
    # real time: as many frames as 20 ms slots elapsed between the first and the last
    elapsed_ms = (agent.frames[-1][1] - agent.frames[0][1]) * 1000
    assert abs(len(agent.frames) - (elapsed_ms / 20 + 1)) <= 3
    assert report.send_lateness.frames == len(agent.frames)
    assert 0 <= report.send_lateness.p50_ms <= report.send_lateness.p99_ms
    assert report.send_lateness.p99_ms <= report.send_lateness.max_ms

    # the greeting's mark comes back once its 200 ms have played, not before
    played_s = echo_time(agent, "greeting") - agent.marks_sent["greeting"]
    assert 0.2 - 0.002 <= played_s <= 0.2 + 0.15
    greeting = report.agent_turns[0]
    assert greeting.marks_heard == ("greeting",) and greeting.heard_ms == 200

    # the utterance: exactly its 10 tone frames were voiced, the digit arrived once
    voiced = [m for m, _ in agent.frames if m.payload != SILENCE]
    assert len(voiced) == 10
    assert [d for d, _ in agent.digits] == ["5"]

    assert [t.kind for t in report.turns] == ["say", "dtmf"]
    for turn, (turn_end_s, reply_sent_s) in zip(report.turns, agent.replies, strict=True):
        assert turn.reply is not None and not turn.barge_in
        assert turn.reply.audio_ms == 300 and turn.reply.heard_ms == 300
        assert len(turn.reply.audio) == (300 * 8 if keep_audio else 0)
        assert turn.reply.marks_heard == (f"reply-{turn.step_index + 1}",)
        assert turn.reply.marks_unheard == () and not turn.reply.interrupted
        # the caller's measurement matches what the server really did, within scheduling slack
        assert turn.turn_latency_ms is not None
        truth_ms = (reply_sent_s - turn_end_s) * 1000
        assert abs(turn.turn_latency_ms - truth_ms) <= 30 + (20 if turn.kind == "say" else 0)
    say_latency = report.turns[0].turn_latency_ms
    assert say_latency is not None
    # the fake sees the end one frame after the last voiced one (less when the caller had to
    # catch up on late frames), then waits 120 ms
    assert 120 - 2 <= say_latency <= 120 + 20 + 100
    assert caller_tasks() == []


async def test_choose_step_plays_the_picked_steps_and_hangs_up_on_none() -> None:
    agent = FakeAgent(greeting=[("audio", 100)])
    offered: list[tuple[int, ...]] = []

    def choose(unplayed: Sequence[int]) -> int | None:
        offered.append(tuple(unplayed))
        return {3: 2, 2: 0}.get(len(unplayed))  # the third step, then the first, then hang up

    async with serve(agent) as url:
        report = await run_caller(
            url, [PressDigit("1", pause_ms=20), PressDigit("2", pause_ms=20),
                  PressDigit("3", pause_ms=20)],
            agent_quiet_ms=60, timeout_s=20, choose_step=choose)
    assert report.errors == () and report.closed_by == "caller"
    assert offered == [(0, 1, 2), (0, 1), (1,)]  # the last pick: None, so step 1 never plays
    assert [t.step_index for t in report.turns] == [2, 0]
    assert [d for d, _ in agent.digits] == ["3", "1"]


async def test_choose_step_must_pick_an_unplayed_step() -> None:
    agent = FakeAgent(greeting=[("audio", 100)])
    async with serve(agent) as url:
        with pytest.raises(ExceptionGroup) as caught:
            await run_caller(url, [PressDigit("1", pause_ms=20)], agent_quiet_ms=60,
                             timeout_s=20, choose_step=lambda unplayed: 5)
    assert caught.group_contains(ValueError, match="picked step 5")


async def test_clear_echoes_every_pending_mark_at_once() -> None:
    agent = FakeAgent(
        greeting=[("audio", 1000), ("mark", "a"), ("audio", 1000), ("mark", "b")],
        clear_after_ms=300,
        reply_ms=None,
    )
    async with serve(agent) as url:
        report = await run_caller(url, [], agent_quiet_ms=100, timeout_s=10)
    assert report.errors == () and report.closed_by == "caller"
    (clear_s,) = agent.clears_sent
    assert [n for n, _ in agent.echoes] == ["a", "b"]
    for name in ("a", "b"):
        assert 0 <= echo_time(agent, name) - clear_s <= 0.1  # at once, not after 1 s or 2 s
    (greeting,) = report.agent_turns
    assert greeting.interrupted
    assert greeting.marks_heard == () and greeting.marks_unheard == ("a", "b")
    assert greeting.audio_ms == 2000
    assert 300 - 5 <= greeting.heard_ms <= 300 + 100


async def test_barge_in_starts_speaking_over_the_agent_after_the_given_audio() -> None:
    agent = FakeAgent(greeting=[("audio", 2000), ("mark", "long")], bargein_frames=3)
    async with serve(agent) as url:
        report = await run_caller(
            url, [Speak(UTTERANCE, interrupt_after_ms=300)], agent_quiet_ms=100, timeout_s=10
        )
    assert report.errors == () and report.closed_by == "caller"
    spoke_after_s = agent.first_voiced[0] - agent.marks_sent["long"]
    assert 0.3 - 0.002 <= spoke_after_s <= 0.3 + 0.15
    (clear_s,) = agent.clears_sent
    assert 0 <= echo_time(agent, "long") - clear_s <= 0.1  # the pending mark came back at once
    (turn,) = report.turns
    assert turn.barge_in
    greeting = report.agent_turns[0]
    assert greeting.interrupted and greeting.marks_unheard == ("long",)
    assert 300 <= greeting.heard_ms <= 300 + 60 + 100  # 3 voiced frames to detect, then slack
    assert turn.reply is not None and turn.reply is report.agent_turns[1]
    assert turn.reply.marks_heard == ("reply-1",) and not turn.reply.interrupted
    assert turn.turn_latency_ms is not None
    ((turn_end_s, reply_sent_s),) = agent.replies
    assert abs(turn.turn_latency_ms - (reply_sent_s - turn_end_s) * 1000) <= 50


async def test_server_hanging_up_mid_call_ends_the_caller_cleanly() -> None:
    agent = FakeAgent(greeting=[("audio", 100)], close_after_frames=15)
    async with serve(agent) as url:
        report = await run_caller(
            url, [Speak(UTTERANCE, pause_ms=0), Speak(UTTERANCE)], agent_quiet_ms=50, timeout_s=10
        )
    assert report.closed_by == "server"
    assert agent.stop is None  # the caller did not send stop to a closed socket
    assert len(report.turns) == 1 and report.turns[0].reply is None
    assert report.duration_s < 5
    assert caller_tasks() == []


async def test_missing_reply_is_reported_and_the_caller_hangs_up() -> None:
    agent = FakeAgent(reply_ms=None)
    async with serve(agent) as url:
        report = await run_caller(
            url,
            [Speak(UTTERANCE, pause_ms=0, wait_for_agent=False), Speak(UTTERANCE)],
            agent_quiet_ms=50,
            reply_timeout_s=0.3,
            timeout_s=10,
        )
    assert report.closed_by == "caller" and agent.stop is not None
    assert len(report.turns) == 1 and report.turns[0].turn_latency_ms is None
    assert any("no agent reply" in e for e in report.errors)
    assert len(agent.first_voiced) == 1  # spoke without a greeting, never a second time


async def test_overall_timeout_hangs_up() -> None:
    agent = FakeAgent(reply_ms=None)
    async with serve(agent) as url:
        report = await run_caller(url, [Speak(UTTERANCE)], timeout_s=0.3)
    assert report.closed_by == "caller" and agent.stop is not None
    assert any(e.startswith("timeout") for e in report.errors)


def test_last_voiced_frame_follows_the_energy_rule() -> None:
    assert last_voiced_frame(SILENCE * 10) is None
    assert last_voiced_frame(UTTERANCE) == 9
    assert last_voiced_frame(tone(100) + tone(60, amplitude=8000 / 100)) == 4  # -40 dB: silence
    assert last_voiced_frame(tone(100) + tone(60, amplitude=8000 / 20)) == 7  # -26 dB: voiced
    assert last_voiced_frame(tone(100, amplitude=20.0)) is None  # below -60 dBFS everywhere
    assert last_voiced_frame(tone(30)) == 1  # a partial last frame counts


def _write_wav(path: Path, samples: np.ndarray, channels: int = 1, rate_hz: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(samples.astype("<i2").tobytes())


def test_wav_files_load_as_mulaw(tmp_path: Path) -> None:
    samples = (8000 * np.sin(np.arange(800) / 5)).astype(np.int16)
    _write_wav(tmp_path / "mono.wav", samples)
    assert load_wav_ulaw(tmp_path / "mono.wav") == encode_array(samples)
    _write_wav(tmp_path / "stereo.wav", np.repeat(samples, 2), channels=2)
    assert load_wav_ulaw(tmp_path / "stereo.wav") == encode_array(samples)
    assert Speak.from_wav(tmp_path / "mono.wav", pause_ms=10).audio == encode_array(samples)


def test_wav_files_at_other_rates_are_resampled_to_8k(tmp_path: Path) -> None:
    t = np.arange(1600) / 16000  # 100 ms of 440 Hz at 16 kHz
    _write_wav(tmp_path / "wide.wav", (8000 * np.sin(2 * np.pi * 440 * t)), rate_hz=16000)
    loaded = decode_array(load_wav_ulaw(tmp_path / "wide.wav")).astype(np.float64)
    assert len(loaded) == 800
    expected = 8000 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    middle = slice(100, 700)  # away from the filter's edges
    assert np.sqrt(np.mean((loaded[middle] - expected[middle]) ** 2)) < 8000 * 0.05


def test_steps_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Speak(b"")
    for digit in ("", "55", "x"):
        with pytest.raises(ValueError):
            PressDigit(digit)
