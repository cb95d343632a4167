"""Both VADs on real synthesised speech (flite) against silence and low noise."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from slotline.audio.framing import FRAME_SAMPLES, PCM16_FRAME_BYTES, SAMPLE_RATE_HZ
from slotline.audio.resample import resample
from slotline.audio.vad import SileroVad, Vad, VadUnavailable, WebRtcVad, silero_model_path

FLITE = "/usr/bin/flite"
SENTENCE = (
    "Hello there. How are you today? I would like to book an appointment "
    "for Tuesday afternoon, please."
)
LOUD_RMS = 300.0  # frames this loud in a clean synthetic recording are speech


def synthesize(voice: str, path: Path) -> npt.NDArray[np.int16]:
    """Speak SENTENCE with flite and return it as 8 kHz int16 (resampled if need be)."""
    subprocess.run([FLITE, "-voice", voice, "-t", SENTENCE, "-o", str(path)], check=True)
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        rate_hz = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    if rate_hz != SAMPLE_RATE_HZ:
        samples = resample(samples, rate_hz, SAMPLE_RATE_HZ)
    return samples


def frames_of(samples: npt.NDArray[np.int16]) -> list[bytes]:
    whole = samples.shape[0] // FRAME_SAMPLES * FRAME_SAMPLES
    return [
        samples[i : i + FRAME_SAMPLES].astype("<i2").tobytes()
        for i in range(0, whole, FRAME_SAMPLES)
    ]


def frame_rms(frame: bytes) -> float:
    values = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(values**2)))


@pytest.fixture(scope="module", params=["kal", "kal16"])  # 8 kHz, and 16 kHz resampled
def speech_frames(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> list[bytes]:
    voice: str = request.param
    samples = synthesize(voice, tmp_path_factory.mktemp("speech") / f"{voice}.wav")
    frames = frames_of(samples)
    assert len(frames) > 150  # several seconds of audio
    return frames


def silence_frames() -> list[bytes]:
    rng = np.random.default_rng(11)
    digital_silence = np.zeros(SAMPLE_RATE_HZ * 2, np.int16)
    line_noise = rng.normal(0, 30, SAMPLE_RATE_HZ * 3).astype(np.int16)  # about -60 dBFS
    return frames_of(digital_silence) + frames_of(line_noise)


def make_vad(kind: str) -> Vad:
    if kind == "webrtc":
        return WebRtcVad(aggressiveness=2)
    return SileroVad(threshold=0.5)


@pytest.mark.parametrize("kind", ["webrtc", "silero"])
def test_speech_is_flagged_and_silence_is_not(kind: str, speech_frames: list[bytes]) -> None:
    vad = make_vad(kind)
    decisions = [vad.is_speech(frame) for frame in speech_frames]
    loud = [
        decided
        for decided, f in zip(decisions, speech_frames, strict=True)
        if frame_rms(f) > LOUD_RMS
    ]
    assert len(loud) > 100
    assert sum(loud) / len(loud) > 0.85

    vad.reset()
    quiet = [vad.is_speech(frame) for frame in silence_frames()]
    assert sum(quiet) / len(quiet) < 0.05


def test_webrtc_decides_as_the_packages_own_wrapper_does(speech_frames: list[bytes]) -> None:
    """``WebRtcVad`` calls the C detector straight; its decisions, frame by frame and across a
    reset, are those of ``webrtcvad.Vad.is_speech`` on the same frames."""
    import webrtcvad

    frames = speech_frames + silence_frames()
    ours, theirs = WebRtcVad(aggressiveness=2), webrtcvad.Vad(2)
    expected = [bool(theirs.is_speech(frame, SAMPLE_RATE_HZ)) for frame in frames]
    assert [ours.is_speech(frame) for frame in frames] == expected
    assert 0 < sum(expected) < len(expected)
    ours.reset()
    fresh = webrtcvad.Vad(2)
    assert [ours.is_speech(frame) for frame in frames] == [
        bool(fresh.is_speech(frame, SAMPLE_RATE_HZ)) for frame in frames]


@pytest.mark.parametrize("kind", ["webrtc", "silero"])
def test_reset_makes_decisions_repeatable(kind: str, speech_frames: list[bytes]) -> None:
    vad = make_vad(kind)
    first = [vad.is_speech(frame) for frame in speech_frames]
    vad.reset()
    second = [vad.is_speech(frame) for frame in speech_frames]
    assert first == second


@pytest.mark.parametrize("kind", ["webrtc", "silero"])
@pytest.mark.parametrize("length", [0, 160, 318, 322, 480])
def test_wrong_frame_length_is_a_clear_error(kind: str, length: int) -> None:
    vad = make_vad(kind)
    with pytest.raises(ValueError, match=f"320 bytes\\), got {length} bytes"):
        vad.is_speech(b"\x00" * length)


def test_webrtc_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="aggressiveness"):
        WebRtcVad(aggressiveness=4)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        WebRtcVad(sample_rate_hz=11025)


def test_webrtc_at_16khz_takes_640_byte_frames() -> None:
    vad = WebRtcVad(sample_rate_hz=16000)
    assert vad.is_speech(b"\x00" * 640) is False
    with pytest.raises(ValueError, match="640 bytes"):
        vad.is_speech(b"\x00" * PCM16_FRAME_BYTES)


def test_silero_probability_follows_the_audio(speech_frames: list[bytes]) -> None:
    vad = SileroVad()
    assert vad.probability == 0.0
    peak = 0.0
    for frame in speech_frames:
        vad.is_speech(frame)
        peak = max(peak, vad.probability)
    assert peak > 0.9
    vad.reset()
    assert vad.probability == 0.0
    for frame in silence_frames():
        vad.is_speech(frame)
    assert vad.probability < 0.1


def test_silero_model_is_found_without_importing_the_package() -> None:
    path = silero_model_path()
    assert path.name == "silero_vad.onnx" and path.is_file()
    SileroVad()
    assert "silero_vad" not in sys.modules  # importing it would pull in torch


def test_silero_with_a_missing_model_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(VadUnavailable, match="cannot load Silero model"):
        SileroVad(model_path=tmp_path / "missing.onnx")


def test_silero_with_a_file_that_is_not_a_model_is_unavailable(tmp_path: Path) -> None:
    not_a_model = tmp_path / "garbage.onnx"
    not_a_model.write_bytes(b"this is not an onnx graph")
    with pytest.raises(VadUnavailable):
        SileroVad(model_path=not_a_model)


def test_silero_rejects_a_bad_threshold() -> None:
    with pytest.raises(ValueError, match="threshold"):
        SileroVad(threshold=1.5)
