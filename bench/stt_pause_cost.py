"""What pausing the offline recogniser costs and saves: decodes and worker CPU per turn, and
the wait at ``finalize`` (= stt_final_ms), with and without ``pause()``.

Each turn is one or two committed caller recordings (two joined by exactly ``--gaps`` ms of
unvoiced frames: a caller pausing mid-answer; 0: one recording), then 600 ms of silence;
frames are pushed in real time (20 ms apart), so a speculative decode races the caller as on
a call. Modes:

* ``auto``: no ``pause()`` call; the stream speculates on its own after 250 ms of silence
  (what every call did before ``pause()`` existed);
* ``pause``: ``pause()`` after 200 ms of silence, as the turn detector does.

Worker CPU is the decoder processes' user+system time (``/proc/<pid>/stat``) over the run,
divided by the turns; other load on the machine does not count there, but it does stretch the
waits, so compare the modes side by side, run in alternation.

    .venv/bin/python -m bench.stt_pause_cost [--rounds 2] [--gaps 0,150,220,400,700]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from slotline.providers.base import AudioChunk, SpeechHints
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import QUESTIONS, SILENCE, caller_frames

FRAME_S = 0.02
PAUSE_AFTER_FRAMES = 10  # 200 ms of silence
END_FRAMES = 30  # the turn ends after 600 ms of silence
PAIRS = (("day_tuesday", "time_3pm"), ("name_john", "book"), ("yes", "afternoon"),
         ("date_dec_first", "time_1030"))
_QUIET = AudioChunk(SILENCE, b"\x00\x00" * 160, voiced=False)
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pids: tuple[int, ...]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


def _voiced_span(stem: str, *, lead_ms: int = 0) -> list[AudioChunk]:
    """The recording from its first to its last voiced frame, after ``lead_ms`` of silence."""
    frames = caller_frames(stem, lead_ms=0, tail_ms=0)
    voiced = [i for i, frame in enumerate(frames) if frame.voiced]
    return [_QUIET] * (lead_ms // 20) + frames[voiced[0] : voiced[-1] + 1]


def _turn(first: str, second: str, gap_ms: int) -> list[AudioChunk]:
    """One answer, or two joined by exactly ``gap_ms`` of unvoiced frames; then the end."""
    frames = _voiced_span(first, lead_ms=400)
    if gap_ms > 0:
        frames += [_QUIET] * (gap_ms // 20) + _voiced_span(second)
    return frames + [_QUIET] * END_FRAMES


async def _run(stt: LocalSpeechToText, turns: list[list[AudioChunk]], pause: bool
               ) -> tuple[float, float, list[float]]:
    """(decodes per turn, worker CPU s per turn, finalize waits in ms)."""
    stream = stt.open_stream(call_sid="CApausebench")
    stream.set_hints(SpeechHints(phrases=QUESTIONS["time"][1] + QUESTIONS["date"][1]))
    decodes, cpu = stt.decodes_requested, _cpu_s(stt.worker_pids)
    waits_ms: list[float] = []
    loop = asyncio.get_running_loop()
    for chunks in turns:
        due = loop.time()
        silent = 0
        for chunk in chunks[:-1]:
            stream.push_audio(chunk)
            silent = 0 if chunk.voiced else silent + 1
            if pause and silent == PAUSE_AFTER_FRAMES:
                stream.pause()
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))
        stream.push_audio(chunks[-1])
        started = time.perf_counter()
        await stream.finalize()
        waits_ms.append((time.perf_counter() - started) * 1000)
    await asyncio.sleep(0.5)  # decodes of the last turn finish in the workers
    await stream.aclose()
    turns_n = len(turns)
    return ((stt.decodes_requested - decodes) / turns_n,
            (_cpu_s(stt.worker_pids) - cpu) / turns_n, waits_ms)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gaps", default="0,150,220,400,700")
    args = parser.parse_args()
    async with LocalSpeechToText() as stt:
        await stt.decode(b"\x00\x00" * 8000, SpeechHints())  # warm
        for gap_ms in (int(g) for g in args.gaps.split(",")):
            turns = [_turn(a, b, gap_ms) for a, b in PAIRS]
            results: dict[str, list[tuple[float, float, list[float]]]] = {"auto": [], "pause": []}
            for _ in range(args.rounds):
                for mode in ("auto", "pause"):  # alternated: load drifts alike on both
                    results[mode].append(await _run(stt, turns, mode == "pause"))
            line = [f"gap {gap_ms:3d} ms:"]
            for mode, runs in results.items():
                decodes = statistics.mean(r[0] for r in runs)
                cpu_ms = statistics.mean(r[1] for r in runs) * 1000
                waits = [w for r in runs for w in r[2]]
                line.append(f"{mode:5} {decodes:.2f} decodes/turn, worker CPU {cpu_ms:5.0f} "
                            f"ms/turn, finalize p50 {statistics.median(waits):5.1f} ms "
                            f"max {max(waits):5.1f} ms;")
            print(" ".join(line))


if __name__ == "__main__":
    asyncio.run(main())
