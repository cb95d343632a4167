"""Per-frame inbound cost of a call: what the server does for every 20 ms of every caller.

Measures, in microseconds per frame (median and p99 over many frames of real speech and
silence), the parse of the Twilio ``media`` message and the session's per-frame path
(``agent.call.frames.FramePipeline``: mu-law decode, VAD, recogniser push, turn detector), with the
offline recogniser the server uses by default. Not a test: run it and read the numbers.

    .venv/bin/python bench/call_frame_cost.py [--frames 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from slotline.agent.call.frames import FramePipeline
from slotline.agent.call.turns import TurnConfig, TurnDetector
from slotline.agent.sim.caller import load_wav_ulaw
from slotline.audio.vad import SileroVad, Vad, WebRtcVad
from slotline.providers.stt.local import LocalSpeechToText
from slotline.providers.telephony import twilio_media as tw

FRAME = 160


def _frames(total: int) -> list[bytes]:
    from importlib import resources

    speech = b""
    for stem in ("name_john", "day_tuesday", "email_john"):
        path = resources.files("slotline.agent.assets.caller").joinpath(f"{stem}.wav")
        with resources.as_file(path) as file:
            speech += load_wav_ulaw(file) + b"\xff" * 8000  # 1 s of silence after each
    speech = speech[: len(speech) - len(speech) % FRAME]
    frames = [speech[i : i + FRAME] for i in range(0, len(speech), FRAME)]
    return [frames[i % len(frames)] for i in range(total)]


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[int(q * (len(values) - 1))]


def _report(name: str, samples_ns: list[int]) -> None:
    us = [s / 1000 for s in samples_ns]
    print(f"{name:<44} p50 {statistics.median(us):8.1f} µs   p99 {_pct(us, 0.99):8.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=20000)
    args = parser.parse_args()
    frames = _frames(args.frames)
    messages = [
        tw.encode_inbound_media("MZ" + "0" * 32, i + 2, i + 1, i * 20, f)
        for i, f in enumerate(frames)
    ]
    parse: list[int] = []
    for m in messages:
        t0 = time.perf_counter_ns()
        tw.parse_inbound(m)
        parse.append(time.perf_counter_ns() - t0)
    _report("parse media message (orjson + base64)", parse)

    stt = LocalSpeechToText()
    vads: list[tuple[str, Vad]] = [("webrtc", WebRtcVad(2)), ("silero", SileroVad())]
    for vad_name, vad in vads:
        stream = stt.open_stream(call_sid="CAbench")
        pipeline = FramePipeline(vad, stream, TurnDetector(TurnConfig()))
        cost: list[int] = []
        for i, f in enumerate(frames):
            t0 = time.perf_counter_ns()
            pipeline.process(f, i * 20)
            cost.append(time.perf_counter_ns() - t0)
        _report(f"frame path, {vad_name} VAD + local STT push", cost)


if __name__ == "__main__":
    main()
