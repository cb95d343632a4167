"""``audio.loudness``: the server finds the end of the caller's words frame by frame, at the very
frame the benchmark's caller (which knows the whole utterance) calls its last voiced one."""

from __future__ import annotations

import numpy as np
import pytest

from slotline.agent.sim.caller import voiced_span
from slotline.agent.sim.demo import caller_wav
from slotline.audio.framing import ULAW_FRAME_BYTES, ULAW_SILENCE
from slotline.audio.loudness import VOICED_FLOOR_RMS, LoudFrames, rms, rms_pcm16
from slotline.audio.mulaw import encode_array, ulaw_to_pcm16

STEMS = ("name_john", "day_tuesday", "time_3pm", "yes", "email_john", "backchannel", "urgent")


def frames(ulaw: bytes) -> list[bytes]:
    ulaw += bytes([ULAW_SILENCE]) * (-len(ulaw) % ULAW_FRAME_BYTES)
    return [ulaw[i : i + ULAW_FRAME_BYTES] for i in range(0, len(ulaw), ULAW_FRAME_BYTES)]


@pytest.mark.parametrize("stem", STEMS)
def test_the_last_loud_frame_online_is_the_callers_last_voiced_frame(stem: str) -> None:
    audio = caller_wav(stem).audio
    span = voiced_span(audio)
    assert span is not None
    loudness = LoudFrames()
    loud = [i for i, frame in enumerate(frames(audio)) if loudness.loud(frame)]
    assert loud[-1] == span[1]


def test_rms_of_a_full_scale_square_wave_and_of_silence() -> None:
    square = encode_array(np.array([8000, -8000] * 80, dtype=np.int16))
    assert rms(square) == pytest.approx(8000, rel=0.02)
    assert rms(bytes([ULAW_SILENCE]) * ULAW_FRAME_BYTES) < VOICED_FLOOR_RMS


def test_a_new_utterance_forgets_the_last_ones_loudest_frame() -> None:
    loud = encode_array(np.full(160, 20000, dtype=np.int16))
    quiet = encode_array(np.full(160, 200, dtype=np.int16))  # 40 dB below: not loud after it
    loudness = LoudFrames()
    assert loudness.loud(loud) and not loudness.loud(quiet)
    loudness.reset()
    assert loudness.loud(quiet)


def test_the_decoded_frames_rms_is_the_mu_law_frames_bit_for_bit() -> None:
    """The frame path measures the decoded frame (``rms_pcm16``): the same number, so the same
    loud frames, as the mu-law frame's ``rms`` on every frame of the caller recordings."""
    every_code = bytes(range(256))
    checked = [every_code[:160], every_code[96:], bytes([ULAW_SILENCE]) * ULAW_FRAME_BYTES]
    for stem in STEMS:
        checked += frames(caller_wav(stem).audio)
    for frame in checked:
        assert rms_pcm16(ulaw_to_pcm16(frame)) == rms(frame)
