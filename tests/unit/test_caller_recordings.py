"""The simulated caller's recordings start with quiet, then speech — never a short loud transient
first. The caller times a barge-in and the end of a turn from its voiced frames (within 35 dB of
the loudest frame, above -60 dBFS), so a click before the speech moves those times: the old
``interrupt`` recording opened with a 60 ms click and 160 ms of near silence, and every
barge-in read ~220 ms late. ``scripts/make_caller_audio.sh`` brings such clicks down.

Checked on the audio the caller sends (8 kHz μ-law, whole 20 ms frames).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import numpy.typing as npt
import pytest

from slotline.agent.sim.caller import SILENCE_FRAME, load_wav_ulaw
from slotline.audio.framing import FRAME_MS, ULAW_FRAME_BYTES
from slotline.audio.loudness import VOICED_FLOOR_RMS, VOICED_WITHIN_DB
from slotline.audio.mulaw import decode_array

LEAD_MS = 100  # this much at the start must be quiet when the speech starts later
LEAD_MAX_DBFS = -50.0  # the recordings' lead-in sits at -58 to -66 dBFS; the click was -39
SPEECH_RUN_MS = 100  # the speech proper: voiced frames without a break this long
MAX_BREAK_MS = 80  # a plosive's release comes 40-60 ms before its vowel; the click 160 ms

ASSETS = resources.files("slotline.agent.assets.caller")
STEMS = sorted(p.name.removesuffix(".wav") for p in ASSETS.iterdir() if p.name.endswith(".wav"))


def frame_levels(stem: str) -> npt.NDArray[np.float64]:
    """RMS of each 20 ms frame the caller would send for this recording."""
    with resources.as_file(ASSETS.joinpath(f"{stem}.wav")) as path:
        ulaw = load_wav_ulaw(path)
    ulaw += SILENCE_FRAME[: -len(ulaw) % ULAW_FRAME_BYTES]
    frames = decode_array(ulaw).astype(np.float64).reshape(-1, ULAW_FRAME_BYTES)
    levels: npt.NDArray[np.float64] = np.sqrt(np.mean(frames * frames, axis=1))
    return levels


def voiced(levels: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    threshold = max(float(levels.max()) * 10 ** (-VOICED_WITHIN_DB / 20), VOICED_FLOOR_RMS)
    flags: npt.NDArray[np.bool_] = levels >= threshold
    return flags


def dbfs(rms: float) -> float:
    return 20 * float(np.log10(max(rms, 1e-9) / 32768))


def test_every_recording_is_checked() -> None:
    assert len(STEMS) >= 29 and "interrupt" in STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_the_lead_in_is_quiet(stem: str) -> None:
    levels = frame_levels(stem)
    first = int(np.argmax(voiced(levels)))
    lead = LEAD_MS // FRAME_MS
    assert first >= lead, f"{stem}: speech starts at {first * FRAME_MS} ms, no quiet lead-in"
    lead_rms = float(np.sqrt(np.mean(levels[:lead] ** 2)))
    assert dbfs(lead_rms) < LEAD_MAX_DBFS, f"{stem}: {LEAD_MS} ms lead-in at {dbfs(lead_rms):.1f}"


@pytest.mark.parametrize("stem", STEMS)
def test_the_first_voiced_frame_starts_the_speech(stem: str) -> None:
    """From the first voiced frame to the first 100 ms of unbroken speech, no quiet stretch
    longer than 80 ms: the first voiced frame belongs to the utterance, not to a click."""
    flags = voiced(frame_levels(stem))
    first = int(np.argmax(flags))
    run = SPEECH_RUN_MS // FRAME_MS
    starts = [i for i in range(first, len(flags) - run + 1) if flags[i : i + run].all()]
    assert starts, f"{stem}: no {SPEECH_RUN_MS} ms of unbroken speech"
    longest_break, current = 0, 0
    for flag in flags[first : starts[0]]:
        current = 0 if flag else current + 1
        longest_break = max(longest_break, current)
    assert longest_break * FRAME_MS <= MAX_BREAK_MS, (
        f"{stem}: {longest_break * FRAME_MS} ms of quiet after the first voiced frame at "
        f"{first * FRAME_MS} ms: a transient before the speech")
