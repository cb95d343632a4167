"""The server's per-frame inbound path, stage by stage, in µs per 20 ms frame of real calls.

Every 20 ms of every call the server parses one Twilio ``media`` message
(``InboundStream.receive_audio``, as ``MediaSocket.receive`` calls it) and runs
``FramePipeline.process`` (mu-law decode, WebRTC VAD, recogniser push, loudness, turn
detector). The frames are every caller recording in ``agent/assets/caller`` with 200 ms of
silence between them, as the messages Twilio would send. The recogniser is a sink that keeps
the frames (the cost of a real one's ``push_audio`` is ``bench/stt_forward_cost.py``'s), so the
numbers are the server's own. Each 64-frame chunk at its best of ``--repeat`` fresh runs (the
box is shared: a chunk another process interrupted is thrown away); the per-chunk lap costs
~0.1 µs a frame, included in every line alike.

    nice -n 19 .venv/bin/python bench/frame_path_cost.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from importlib import resources

from bench.null_stt import NullStream
from slotline.agent.call.frames import FramePipeline
from slotline.agent.call.turns import TurnConfig, TurnDetector
from slotline.agent.sim.caller import load_wav_ulaw
from slotline.audio.framing import FRAME_MS, ULAW_FRAME_BYTES, ULAW_SILENCE
from slotline.audio.loudness import LoudFrames
from slotline.audio.mulaw import ulaw_to_pcm16
from slotline.audio.vad import WebRtcVad
from slotline.providers.telephony import twilio_media as tw

STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
ACCOUNT_SID = "AC25e16e9a716a4a1786a7c83f58e30482"
CALL_SID = "CA2f8b5c14c95e6f5e2fcb8f2b8c5d2f0a"


def caller_frames() -> list[bytes]:
    """Every caller recording, 200 ms of silence after each, cut into 20 ms frames."""
    audio = bytearray()
    folder = resources.files("slotline.agent.assets.caller")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".wav"):
            with resources.as_file(entry) as path:
                audio += load_wav_ulaw(path)
            audio += bytes([ULAW_SILENCE]) * (10 * ULAW_FRAME_BYTES)
    usable = len(audio) - len(audio) % ULAW_FRAME_BYTES
    return [bytes(audio[i : i + ULAW_FRAME_BYTES]) for i in range(0, usable, ULAW_FRAME_BYTES)]


CHUNK = 64  # frames timed together: short enough that most chunks run unpreempted


class _Laps:
    """Called after every frame; keeps the time of each ``CHUNK`` frames."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self._last = time.perf_counter_ns()

    def __call__(self, i: int) -> None:
        if i % CHUNK == 0:
            now = time.perf_counter_ns()
            self.times.append(now - self._last)
            self._last = now


def _best_us(run: Callable[[Callable[[int], None]], None], frames: int, repeat: int) -> float:
    """µs per frame: each chunk of frames at its fastest over ``repeat`` fresh runs (every run
    does the same work chunk by chunk), summed; what another process took is thrown away."""
    best: list[int] = []
    for _ in range(repeat):
        laps = _Laps()
        run(laps)
        laps(0)
        times = laps.times
        best = times if not best else [min(a, b) for a, b in zip(best, times, strict=True)]
    return sum(best) / frames / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    frames = caller_frames()
    messages = [
        tw.encode_inbound_media(STREAM_SID, i + 2, i + 1, i * FRAME_MS, f)
        for i, f in enumerate(frames)
    ]
    start = tw.encode_start(STREAM_SID, ACCOUNT_SID, CALL_SID)

    def parse(lap: Callable[[int], None]) -> None:
        stream = tw.InboundStream()
        stream.receive(start, 0)
        receive = stream.receive
        for i, m in enumerate(messages):
            receive(m, i * FRAME_MS)
            lap(i)

    def parse_audio(lap: Callable[[int], None]) -> None:
        stream = tw.InboundStream()
        stream.receive(start, 0)
        receive = stream.receive_audio
        for i, m in enumerate(messages):
            receive(m, i * FRAME_MS)
            lap(i)

    def decode(lap: Callable[[int], None]) -> None:
        for i, f in enumerate(frames):
            ulaw_to_pcm16(f)
            lap(i)

    def loudness(lap: Callable[[int], None]) -> None:
        loud = LoudFrames().loud
        for i, f in enumerate(frames):
            loud(f)
            lap(i)

    def pipeline(agent_speaking: bool) -> Callable[[Callable[[int], None]], None]:
        def run(lap: Callable[[int], None]) -> None:
            turns = TurnDetector(TurnConfig())
            turns.agent_speaking = agent_speaking
            process = FramePipeline(WebRtcVad(2), NullStream(), turns).process
            for i, f in enumerate(frames):
                process(f, i * FRAME_MS)
                lap(i)

        return run

    def whole(lap: Callable[[int], None]) -> None:
        stream = tw.InboundStream()
        stream.receive(start, 0)
        receive = stream.receive_audio
        process = FramePipeline(WebRtcVad(2), NullStream(), TurnDetector(TurnConfig())).process
        for i, m in enumerate(messages):
            ulaw = receive(m, i * FRAME_MS)
            assert type(ulaw) is bytes
            process(ulaw, i * FRAME_MS)
            lap(i)

    cases: list[tuple[str, Callable[[Callable[[int], None]], None]]] = [
        ("parse media message (receive: Media)", parse),
        ("parse media message (receive_audio)", parse_audio),
        ("mu-law decode", decode),
        ("loudness", loudness),
        ("FramePipeline.process, agent silent", pipeline(False)),
        ("FramePipeline.process, agent speaking", pipeline(True)),
        ("parse + process (the frame path)", whole),
    ]
    print(f"{len(frames)} frames of {len(frames) * FRAME_MS / 1000:.0f} s of caller audio")
    for name, run in cases:
        print(f"{name:<40} {_best_us(run, len(frames), args.repeat):7.2f} µs/frame")


if __name__ == "__main__":
    main()
