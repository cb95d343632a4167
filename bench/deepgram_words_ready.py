"""When the caller's words are ready on the emulated Deepgram: from the caller's last voiced
frame to the first result whose turn text is the turn's final text (what an early start or a
semantic end of turn can act on), through ``DeepgramSttStream`` and the Deepgram emulator's
cloud profile (results 250 ms behind the audio, Finalize answered in 150 ms, jitter 30 ms).

Modes:
* ``old cadence``: an interim every 500 ms of speech, none at pauses (the emulator before
  December 2026);
* ``new cadence``: Deepgram's documented ~1 s, plus one 100 ms into a pause;
* ``new + pause()``: the same, and ``pause()`` (Finalize) after 200 ms of silence, as the turn
  detector does.

Frames go out in real time, ``--concurrent`` calls at once, each the committed caller
recordings in turn with 1.2 s of silence after each. Medians and p95 of the wait in ms; "never"
counts turns whose final words came only with ``finalize()`` (or not at all: the emulator
decodes with the offline recogniser, so on a loaded machine its results come late and a
finalize may time out; compare the modes side by side).

    .venv/bin/python -m bench.deepgram_words_ready [--concurrent 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from slotline.providers.base import Heard
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.errors import ProviderError
from slotline.providers.stt.deepgram import DeepgramSpeechToText
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import FREE_TEXT, TEXTS, caller_frames

KEY = "bench-key"
FRAME_S = 0.02
PAUSE_FRAMES = 10  # 200 ms
STEMS = [stem for stem in TEXTS if stem not in FREE_TEXT]
MODES: dict[str, tuple[dict[str, Any], bool]] = {
    "old cadence": ({"interim_every_ms": 500, "interim_pause_ms": None}, False),
    "new cadence": ({"interim_every_ms": 1000, "interim_pause_ms": 100}, False),
    "new + pause()": ({"interim_every_ms": 1000, "interim_pause_ms": 100}, True),
}


async def _call(stt: DeepgramSpeechToText, stems: list[str], pause: bool, name: str
                ) -> tuple[list[float], int]:
    """Waits (ms) from the last voiced frame to words equal to the final text; turns missed."""
    loop = asyncio.get_running_loop()
    stream = stt.open_stream(call_sid=name)
    heard: list[tuple[float, str]] = []

    async def read() -> None:
        async for event in stream.events():
            if isinstance(event, Heard):
                heard.append((loop.time(), event.text))

    reader = asyncio.create_task(read())
    waits: list[float] = []
    missed = 0
    due = loop.time()
    for stem in stems:
        heard.clear()
        last_voiced = due
        silent = 0
        for chunk in caller_frames(stem, lead_ms=200, tail_ms=1200):
            stream.push_audio(chunk)
            if chunk.voiced:
                last_voiced, silent = due, 0
            else:
                silent += 1
                if pause and silent == PAUSE_FRAMES:
                    stream.pause()
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))
        try:
            final = (await stream.finalize()).text
        except ProviderError:  # the emulator's decode outlasted finalize_timeout_s
            final = ""
        ready = [at for at, text in heard if text == final and final]
        if ready:
            waits.append((ready[0] - last_voiced) * 1000)
        else:
            missed += 1
        due = loop.time()
    await stream.aclose()
    await reader
    return waits, missed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    async with LocalSpeechToText(workers=2) as recognizer:
        for mode, (knobs, pause) in MODES.items():
            async with DeepgramEmulator.cloud(api_key=KEY, recognizer=recognizer,
                                              **knobs) as dg:
                stt = DeepgramSpeechToText(KEY, base_url=dg.url)
                shares = [STEMS[i :: args.concurrent] for i in range(args.concurrent)]
                results = await asyncio.gather(*(
                    _call(stt, share, pause, f"CA{i}") for i, share in enumerate(shares)))
            waits = sorted(w for r in results for w in r[0])
            missed = sum(r[1] for r in results)
            p95 = waits[min(len(waits) - 1, round(0.95 * (len(waits) - 1)))] if waits else 0.0
            median = statistics.median(waits) if waits else 0.0
            print(f"{mode:14} words ready after the last voiced frame: p50 {median:4.0f} ms, "
                  f"p95 {p95:4.0f} ms, n={len(waits)}, never before finalize: {missed}")


if __name__ == "__main__":
    asyncio.run(main())
