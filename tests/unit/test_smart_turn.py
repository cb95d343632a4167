"""Smart Turn v3 (``agent.call.smart_turn``) and its features (``audio.mel``).

The features are checked against Hugging Face's ``WhisperFeatureExtractor`` (values stored once
in ``data/smart_turn_mel.npz``; see ``mel_signals.py``): measured max abs difference 1.2e-7 over
the whole 80 x 800 array of both signals (transformers 5.25, numpy 2.4), i.e. one float32 step.

The model runs on real speech, as a phone line carries it (flite, 8 kHz mu-law). What flite
can show is limited: a phrase synthesised on its own ("... an appointment for") gets flite's
sentence-final intonation, and the model (rightly) hears it as finished, so the cut turn here is
the complete sentence's audio stopped before its last word. Even so, flite's voices are far from
the human speech the model learnt from: over 11 voice settings, 3 trailing silences and 4 cut
points the ordering "complete > cut" held for most but not all, and only the ``rms`` voice kept
a wide margin everywhere (cut <= 0.11, complete >= 0.67 with 200-300 ms of trailing silence).
That one, robust case is what the test asserts; ``python -m bench.smart_turn_cost --quality``
scores every voice.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.smart_turn_cost import SENTENCES, stopped
from bench.turn_end_clips import Synth
from slotline.agent.call import smart_turn
from slotline.agent.call.smart_turn import SmartTurn
from slotline.agent.server.wiring import turn_model_factory
from slotline.audio import mel
from slotline.providers.extras import MissingExtra
from tests.unit import mel_signals

_REFERENCE = Path(__file__).parent / "data" / "smart_turn_mel.npz"


def test_features_match_the_whisper_extractor() -> None:
    expected = np.load(_REFERENCE)
    for name, signal in mel_signals.signals().items():
        features = mel.log_mel(mel.fit_window(signal))
        assert features.shape == (mel.N_MELS, mel.N_FRAMES) and features.dtype == np.float32
        kept = features[:, mel_signals.KEPT_FRAMES]
        assert np.abs(kept - expected[name]).max() < 1e-5, name
        assert abs(float(features.mean()) - float(expected[name + "_mean"])) < 1e-6, name


def test_the_window_is_the_last_8_s_padded_in_front() -> None:
    short = np.arange(1, 4, dtype=np.float32)
    window = mel.fit_window(short)
    assert window.shape == (mel.WINDOW_SAMPLES,)
    assert window[-3:].tolist() == [1.0, 2.0, 3.0] and not window[:-3].any()
    long = np.arange(mel.WINDOW_SAMPLES + 5, dtype=np.float32)
    assert mel.fit_window(long)[0] == 5.0 and mel.fit_window(long)[-1] == long[-1]
    assert not mel.fit_window(np.zeros(0, np.float32)).any()
    with pytest.raises(ValueError, match="128000"):
        mel.log_mel(short)


def test_filters_cover_the_band_with_equal_area() -> None:
    filters = mel.mel_filters()
    assert filters.shape == (mel.N_MELS, mel.N_FFT // 2 + 1)
    assert (filters >= 0).all() and (filters.sum(axis=1) > 0).all()
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # bands rise in frequency


@pytest.fixture(scope="module")
def rms_turns() -> tuple[bytes, bytes]:
    """(stopped, whole): "I would like to book an appointment for Tuesday." in flite's rms
    voice over a phone line, stopped before "Tuesday" or whole (``bench.smart_turn_cost``)."""
    synth = Synth()
    try:
        return stopped(synth, "rms", *SENTENCES[0])
    finally:
        synth.close()


async def test_a_sentence_stopped_before_its_last_word_is_heard_as_unfinished(
    rms_turns: tuple[bytes, bytes],
) -> None:
    cut, complete = rms_turns
    model = SmartTurn()
    p_cut, p_complete = await model.complete(cut), await model.complete(complete)
    assert p_cut < 0.2 < 0.5 < p_complete, (p_cut, p_complete)  # measured 0.05 and 0.67


async def test_a_calls_requests_queue_off_the_event_loop(rms_turns: tuple[bytes, bytes]) -> None:
    cut, complete = rms_turns
    model = SmartTurn()
    alone = [await model.complete(cut), await model.complete(complete)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    counting = asyncio.create_task(ticker())
    together = await asyncio.gather(model.complete(cut), model.complete(complete))
    counting.cancel()
    assert list(together) == alone  # queued, each on its own audio, same answers
    assert ticks > 2  # the loop ran other work while the model did
    assert 0.0 <= min(alone) <= max(alone) <= 1.0
    assert 0.0 <= await model.complete(b"") <= 1.0  # no audio: an answer (0.99), no error


async def test_a_cancelled_request_leaves_the_call_usable(rms_turns: tuple[bytes, bytes]) -> None:
    cut, _ = rms_turns
    model = SmartTurn()
    first = asyncio.create_task(model.complete(cut))
    second = asyncio.create_task(model.complete(cut))
    await asyncio.sleep(0)
    second.cancel()  # queued behind the first: dropped before it runs
    assert await first == await model.complete(cut)
    with pytest.raises(asyncio.CancelledError):
        await second


def test_a_missing_model_wheel_or_runtime_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sys.modules[name] = None: the import system reports the package as absent.
    monkeypatch.setitem(sys.modules, "pipecat", None)
    assert not smart_turn.available()
    with pytest.raises(MissingExtra, match="pip install --no-deps pipecat-ai"):
        smart_turn.load()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra, match=r"slotline\[smartturn\]"):
        smart_turn.load()


def test_the_setting_decides_whether_calls_get_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    assert turn_model_factory("off") is None
    assert turn_model_factory("auto") is SmartTurn and turn_model_factory("on") is SmartTurn
    monkeypatch.setitem(sys.modules, "pipecat", None)  # the model wheel is not installed
    assert turn_model_factory("auto") is None
    with pytest.raises(MissingExtra, match="pipecat-ai"):
        turn_model_factory("on")
