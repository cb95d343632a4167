"""What Smart Turn v3 (``agent.call.smart_turn``) costs per inference, what that does to calls
per core, and how well it tells a pause inside an answer from the answer's end.

Cost: ``--inferences`` requests through ``SmartTurn.complete`` one after another, each on a
different 8 kHz turn of speech-like audio (8 s: the model always sees an 8 s window, so shorter
turns cost the same but for the resampling of less audio). Reported: process CPU per inference
(``time.process_time`` over the whole run, divided: every thread of the process, so it includes
the event loop's share), the parts measured on their own in the calling thread (resampling +
features, and the model run: ``thread_time`` each), wall time per request p50/p95, and the
event loop's longest stall while requests ran (a 1 ms ticker: the work is on the model's thread,
but numpy parts hold the GIL for short spells).

Calls per core: one inference per pause of an open-question turn, ``--pauses-per-minute`` such
pauses per call-minute (default 6: a caller talks about half the time and pauses every ~5 s of
speech). Smart Turn's CPU per call-second = pauses x CPU per inference / 60; beside the server's
own (``--base-cpu-ms-per-call-s``, default 8.4 ms: README, ``slotline bench --profile cloud``,
10 calls), calls per core go from 1000 / base to 1000 / (base + Smart Turn's).

Quality (``--quality``): the labelled turn-end clips (``bench.turn_end_clips``: the booking
answers said in pieces with 300-900 ms pauses, flite's voices and espeak), each asked at every
internal pause and at its real end, 200 ms into the silence (what a turn logic that asks at a
200 ms pause would send). Reported per voice: internal pauses scored >= 0.5 (the model alone
would cut the caller off there), ends scored < 0.5 (it would leave the wait to the silence
timeout), and the AUC (chance that an end outscores a pause; 0.5 is a coin).

The labelled clips' pieces are synthesised one by one, so each piece ends with flite's
sentence-final intonation: a poor test of what the model listens for. The second quality table
uses whole sentences instead: "I would like to book an appointment for Tuesday." stopped at the
quietest 20 ms near where "... appointment for" ends when said alone (``stopped``), against the
whole sentence, both 200 ms into the following silence; five sentences, every voice.

    cd /work/main && .venv/bin/python -m bench.smart_turn_cost [--inferences 200] [--quality]

Measured (December 2026, 2 shared cores, AMD EPYC with AVX2, no VNNI; other benchmarks running,
so wall times are not the model's): process CPU per inference 142 ms, of which the model run
131 ms and resampling + features 11 ms (medians; the features cost 1/12 of the model); event
loop's longest stall 21 ms while inferences ran; at 6 pauses a call-minute 14 ms of CPU per
call-second, 1.7x the server's own 8.4 ms, i.e. 119 -> 44 calls per core. Quality: AUC 0.39
(labelled clips, 76 % of internal pauses >= 0.5) and 0.45 (stopped sentences): see
``agent.call.smart_turn`` for why it is off by default.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import numpy as np
import numpy.typing as npt

from bench.turn_end_clips import ANSWERS, DEFAULT_VOICES, Clip, Synth, caller_words, said
from slotline.agent.call import smart_turn
from slotline.agent.call.smart_turn import SmartTurn
from slotline.audio.mulaw import decode_array, encode_array

RATE_HZ = 8000
ASK_AFTER_MS = 200  # silence before the model is asked, in the quality run
_FRAME = RATE_HZ // 50  # 20 ms
# (whole sentence, its beginning said alone): where the beginning ends, the sentence is stopped
SENTENCES = (
    ("I would like to book an appointment for Tuesday.", "I would like to book an appointment for"),
    ("My name is John and my wife is Mary.", "My name is John and"),
    ("Could you tell me if you have anything on Friday?", "Could you tell me if you have"),
    ("I need to cancel my appointment.", "I need to"),
    ("I was wondering whether you could help me.", "I was wondering whether"),
)


def speech_like(seconds: float, seed: int) -> bytes:
    """Harmonics of a gliding pitch under a syllable-rate envelope, noise underneath."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE_HZ * seconds)) / RATE_HZ
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
    voiced = sum(np.sin(k * phase) / k for k in range(1, 16))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None)
    signal = 5000 * envelope * voiced + rng.normal(0, 150, t.shape[0])
    return np.clip(signal, -32768, 32767).astype("<i2").tobytes()


def _frame_rms(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    frames = samples[: samples.shape[0] // _FRAME * _FRAME].astype(np.float64)
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(frames.reshape(-1, _FRAME) ** 2, axis=1))
    return rms


def _last_voiced_frame(samples: npt.NDArray[np.int16]) -> int:
    rms = _frame_rms(samples)
    return int(np.flatnonzero(rms > 0.05 * rms.max())[-1]) + 1


def stopped(speak: Synth, voice: str, whole: str, beginning: str) -> tuple[bytes, bytes]:
    """(stopped, whole) as 8 kHz 16-bit PCM through mu-law (a phone line): ``whole`` said in
    ``voice``, stopped at the quietest 20 ms frame of the 240 ms before (and 60 ms after) where
    ``beginning`` said alone ends; each with 300 ms of silence before and ``ASK_AFTER_MS``
    after. Said alone, the beginning would end on a falling pitch the model rightly hears as
    finished; cut out of the whole sentence it keeps the pitch of a sentence going on."""
    said = speak(voice, whole)
    end = _last_voiced_frame(speak(voice, beginning))
    rms = _frame_rms(said)
    start = max(end - 12, 1)
    cut_at = start + int(np.argmin(rms[start : end + 3]))
    before = np.zeros(300 * RATE_HZ // 1000, np.int16)
    after = np.zeros(ASK_AFTER_MS * RATE_HZ // 1000, np.int16)

    def phoned(samples: npt.NDArray[np.int16]) -> bytes:
        line = decode_array(encode_array(np.concatenate([before, samples, after])))
        return line.astype("<i2").tobytes()

    return phoned(said[: cut_at * _FRAME]), phoned(said[: _last_voiced_frame(said) * _FRAME])


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _timed(turns: list[bytes], tick: bool) -> tuple[list[float], float, float]:
    """Wall ms per request, process CPU ms per request, the loop's longest stall in ms (with
    ``tick``: a 1 ms ticker runs meanwhile, which costs CPU of its own)."""
    model = SmartTurn()
    await model.complete(turns[0])  # loaded and warm
    stall_ms = 0.0
    running = True

    async def ticker() -> None:
        nonlocal stall_ms
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stall_ms = max(stall_ms, (now - last) * 1000 - 1.0)
            last = now

    ticking = asyncio.create_task(ticker()) if tick else None
    walls: list[float] = []
    cpu0 = time.process_time()
    for turn in turns:
        t0 = time.perf_counter()
        await model.complete(turn)
        walls.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (time.process_time() - cpu0) * 1000 / len(turns)
    running = False
    if ticking is not None:
        await ticking
    return walls, cpu_ms, stall_ms


def _parts(turns: list[bytes]) -> tuple[float, float]:
    """Median thread CPU ms of (resampling + features) and of the model run alone."""
    smart_turn.load()
    runtime = smart_turn._Shared.get()  # the bench may look inside: it measures the parts
    features_ms, model_ms = [], []
    for turn in turns:
        t0 = time.thread_time()
        features = smart_turn.features(turn)
        t1 = time.thread_time()
        runtime.session.run(None, {"input_features": features})
        t2 = time.thread_time()
        features_ms.append((t1 - t0) * 1000)
        model_ms.append((t2 - t1) * 1000)
    return statistics.median(features_ms), statistics.median(model_ms)


def cost(args: argparse.Namespace) -> None:
    turns = [speech_like(args.seconds, seed) for seed in range(args.inferences)]
    walls, cpu_ms, _ = asyncio.run(_timed(turns, tick=False))
    _, _, stall_ms = asyncio.run(_timed(turns[: max(10, len(turns) // 4)], tick=True))
    features_ms, model_ms = _parts(turns[: max(20, args.inferences // 4)])
    per_call_s = args.pauses_per_minute * cpu_ms / 60  # ms of CPU per call-second
    base = args.base_cpu_ms_per_call_s
    print(f"Smart Turn v3, {args.inferences} requests of {args.seconds:g} s turns, one at a time")
    print(f"  process CPU per inference   {cpu_ms:7.1f} ms   (all threads)")
    print(f"    resample + features       {features_ms:7.1f} ms   (median, thread CPU)")
    print(f"    model run                 {model_ms:7.1f} ms   (median, thread CPU)")
    p50, p95 = _pct(walls, 50), _pct(walls, 95)
    print(f"  wall per request            p50 {p50:.1f} ms  p95 {p95:.1f} ms")
    print(f"  event loop's longest stall  {stall_ms:7.1f} ms")
    print(f"  at {args.pauses_per_minute:g} pauses per call-minute: {per_call_s:.1f} ms of CPU "
          f"per call-second ({per_call_s / 10:.2f} % of a core per call)")
    print(f"  beside the server's {base:g} ms per call-second: {1000 / base:.0f} -> "
          f"{1000 / (base + per_call_s):.0f} calls per core "
          f"({per_call_s / (base + per_call_s) * 100:.0f} % fewer)")


async def _scores(clips: list[Clip]) -> list[tuple[str, bool, float]]:
    model = SmartTurn()
    out = []
    for clip in clips:
        pcm = decode_array(clip.audio).astype("<i2")
        per_ms = RATE_HZ // 1000
        padded = np.concatenate([pcm, np.zeros(ASK_AFTER_MS * per_ms, "<i2")])
        asks = [(start, False) for start, _ in clip.labels.pauses_ms]
        asks.append((clip.labels.end_ms, True))
        for at_ms, is_end in asks:
            audio: npt.NDArray[np.int16] = padded[: (at_ms + ASK_AFTER_MS) * per_ms]
            out.append((clip.voice, is_end, await model.complete(audio.tobytes())))
    return out


def _auc(ends: list[float], pauses: list[float]) -> float:
    wins = sum((e > p) + 0.5 * (e == p) for e in ends for p in pauses)
    return wins / (len(ends) * len(pauses))


def quality(args: argparse.Namespace) -> None:
    synth = Synth()
    clips = []
    sentences: list[tuple[str, bool, bytes]] = []
    try:
        for v, voice in enumerate(args.voices):
            rng = random.Random(f"{args.seed}/{voice}")
            for templates in ANSWERS.values():
                for template in templates:
                    words = caller_words(rng, "tuesday", "three")
                    clips.append(said(synth, voice, template, words, rng, f"s{v}"))
            for whole, beginning in SENTENCES:
                cut, complete = stopped(synth, voice, whole, beginning)
                sentences += [(voice, False, cut), (voice, True, complete)]
    finally:
        synth.close()
    _table(f"the labelled clips (asked {ASK_AFTER_MS} ms into each pause and after each end; "
           f"seed {args.seed})", args.voices, asyncio.run(_scores(clips)))
    _table(f"whole sentences, stopped before their last words or not ({len(SENTENCES)} each)",
           args.voices, asyncio.run(_sentence_scores(sentences)))


async def _sentence_scores(
    sentences: list[tuple[str, bool, bytes]],
) -> list[tuple[str, bool, float]]:
    model = SmartTurn()
    return [(voice, is_end, await model.complete(pcm)) for voice, is_end, pcm in sentences]


def _table(title: str, voices: tuple[str, ...], scores: list[tuple[str, bool, float]]) -> None:
    print(f"\nQuality on {title}; threshold 0.5")
    print(f"  {'voice':8} {'pauses':>6} {'pause>=0.5':>10} {'ends':>5} {'end<0.5':>8} {'AUC':>5}")
    for voice in (*voices, "all"):
        mine = [(e, s) for v, e, s in scores if voice in (v, "all")]
        pauses = [s for e, s in mine if not e]
        ends = [s for e, s in mine if e]
        early = sum(s >= 0.5 for s in pauses) / len(pauses) * 100
        late = sum(s < 0.5 for s in ends) / len(ends) * 100
        print(f"  {voice:8} {len(pauses):6} {early:9.0f}% {len(ends):5} {late:7.0f}% "
              f"{_auc(ends, pauses):5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inferences", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each turn")
    parser.add_argument("--pauses-per-minute", type=float, default=6.0)
    parser.add_argument("--base-cpu-ms-per-call-s", type=float, default=8.4)
    parser.add_argument("--quality", action="store_true", help="also score the labelled clips")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--voices", type=lambda text: tuple(text.split(",")),
                        default=DEFAULT_VOICES, help="comma-separated (quality run)")
    args = parser.parse_args()
    import onnxruntime  # noqa: F401  (imported first, so the line below is the model's own)

    before = _rss_mb()
    smart_turn.load()
    print(f"model loaded: resident memory +{_rss_mb() - before:.0f} MB in this process")
    cost(args)
    if args.quality:
        quality(args)


if __name__ == "__main__":
    main()
