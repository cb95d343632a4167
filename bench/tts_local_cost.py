"""Cost of offline speech with espeak-ng (providers.tts.local) as a call sees it.

Prints, for a typical 10-word sentence: time to the first audio chunk (what ``tts_ttfb_ms``
records), time to the last chunk, and the real-time factor (seconds of work per second of
audio, resampling and mu-law included); then how quickly a new reply starts after a long one
is cancelled (barge-in), and the first-chunk wait while other calls are speaking.

    cd /work/main && /work/venv/bin/python -m bench.tts_local_cost [--repeats N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from slotline.providers.tts.local import LocalTts

SENTENCE = "Great, I have booked your appointment for Tuesday at three."  # 10 words
LONG_TEXT = " ".join([SENTENCE] * 50)
BYTES_PER_S = 8000  # 8 kHz mu-law


async def _one(tts: LocalTts, text: str) -> tuple[float, float, int]:
    """Seconds to the first and the last chunk, and the audio length in bytes."""
    started = time.perf_counter()
    first_s = 0.0
    total = 0
    async for chunk in tts.synthesize(text):
        if not total:
            first_s = time.perf_counter() - started
        total += len(chunk)
    return first_s, time.perf_counter() - started, total


async def _after_cancel(tts: LocalTts) -> float:
    """Seconds from abandoning a long reply after its first chunk to a new reply's first chunk."""
    async for _ in tts.synthesize(LONG_TEXT):
        break  # the generator is closed here, as when a barge-in cancels the reply task
    first_s, _, _ = await _one(tts, SENTENCE)
    return first_s


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.2f} ms   best {min(values) * 1000:7.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    started = time.perf_counter()
    tts = LocalTts()
    startup_ms = (time.perf_counter() - started) * 1000
    print(f"start-up (worker thread, library, voice): {startup_ms:.1f} ms")

    runs = [await _one(tts, SENTENCE) for _ in range(args.repeats)]
    audio_s = runs[0][2] / BYTES_PER_S
    firsts = [first for first, _, _ in runs]
    lasts = [last for _, last, _ in runs]
    print(f"sentence: {SENTENCE!r} -> {audio_s:.2f} s of audio, {args.repeats} runs")
    print(f"  time to first chunk    {_ms(firsts)}")
    print(f"  time to last chunk     {_ms(lasts)}")
    rtf = [last / audio_s for last in lasts]
    print(f"  real-time factor       median {statistics.median(rtf):.4f}   "
          f"(~{1 / statistics.median(rtf):.0f}x faster than real time)")

    long_first, long_last, long_bytes = await _one(tts, LONG_TEXT)
    long_audio_s = long_bytes / BYTES_PER_S
    print(f"long text ({len(LONG_TEXT)} chars, {long_audio_s:.0f} s of audio): first chunk "
          f"{long_first * 1000:.2f} ms, last {long_last * 1000:.0f} ms, "
          f"RTF {long_last / long_audio_s:.4f}")

    after_cancel = [await _after_cancel(tts) for _ in range(10)]
    print(f"next reply's first chunk after cancelling a long one: {_ms(after_cancel)}")

    for calls in (4, 16):
        others = [asyncio.create_task(_one(tts, LONG_TEXT), name=f"other-{i}")
                  for i in range(calls - 1)]
        await asyncio.sleep(0)  # the other calls are queued first
        first_s, _, _ = await _one(tts, SENTENCE)
        await asyncio.gather(*others)
        print(f"first chunk while {calls - 1} other calls speak long texts: "
              f"{first_s * 1000:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
