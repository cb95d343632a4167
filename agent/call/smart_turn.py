"""Smart Turn v3: an audio model that says whether the caller has finished their turn.

At a pause in an open answer ("I'd like to book an appointment for ...") silence alone cannot
tell a finished sentence from a caller who is thinking; Smart Turn v3 listens to the last 8 s
of the turn (intonation, a trailing "for", a drawn-out vowel) and returns the probability that
the turn is complete. The caller of ``SmartTurn.complete`` (the frame pipeline, at a pause)
decides what to do with it; the silence timeout remains the fallback.

The model is Pipecat's BSD-2 licensed ``smart-turn-v3.2-cpu.onnx`` (a quantised Whisper-tiny
encoder with a classifier head, ~8.7 MB). It ships inside the ``pipecat-ai`` wheel, which is
installed with ``--no-deps`` (its dependencies are not needed: the package is never imported,
only the file is located) and run with onnxruntime (the ``smartturn`` extra). The features are
ours (``audio.mel``, checked against Hugging Face's extractor).

Where the work runs: every inference (8 kHz -> 16 kHz resampling, features, model) runs in one
dedicated thread per process, never on the event loop; onnxruntime uses one intra-op thread, so
one inference occupies one core for its duration and calls on other cores are untouched. One
onnxruntime session per process, loaded on first use (``load()`` loads it at start-up).

Off by default (``turn.smart_turn: off``), from ``python -m bench.smart_turn_cost --quality``
(December 2026, a 2-core AMD EPYC with AVX2 but no VNNI, shared with other work):

* cost: 120-140 ms of CPU per inference (the int8 model ~92 %, resampling and features ~8 %),
  whatever the turn's length (the window is always 8 s); at 6 pauses a call-minute that is
  ~1.7x the server's whole CPU per call-second (README: 8.4 ms), so calls per core fall by
  more than half if every pause ran it; +49 MB resident per process.
* quality on our synthetic callers (flite's voices, espeak, over a phone line): no better
  than chance. On the labelled turn-end clips it scored 76 % of internal pauses >= 0.5 (cut-offs,
  were it to end turns) with an AUC of 0.39; on whole sentences stopped before their last word
  against the whole, AUC 0.45. (The clips' pieces are synthesised one by one and end on a
  falling pitch, which a prosody model hears as finished; no human recordings were available.)
  It also scores silence alone 0.99.

``auto`` uses it where it is installed, ``on`` requires it: for trials with human callers.

Concurrency, per call: QUEUED. A call's inferences run one after another (a lock per
``SmartTurn``); a request made while the call's previous one still runs waits for it. A request
whose awaiting task is cancelled (the silence timeout ended the turn first, or the caller spoke
again) is dropped from the thread's queue if it has not started; one that has started finishes
and its result is discarded. So each call has at most one inference running and one queued,
and across calls the single thread serves them in arrival order. Cost per inference:
``python -m bench.smart_turn_cost``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr  # untyped: ignore_missing_imports in pyproject

from slotline.audio import mel
from slotline.providers.extras import MissingExtra, require

__all__ = [
    "MODEL_FILE",
    "MissingSmartTurnModel",
    "SmartTurn",
    "available",
    "features",
    "load",
    "model_path",
]

logger = logging.getLogger(__name__)

IN_RATE_HZ = 8000  # telephony: what the call's frames carry
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
_MODEL_DIR = ("audio", "turn", "smart_turn", "data")  # inside the `pipecat` package
_INPUT = "input_features"
_FEATURE = "smart turn (turn.smart_turn)"
_EXTRA = "smartturn"
_MODEL_HINT = "pip install --no-deps pipecat-ai  (only its Smart Turn model file is used)"
# Input kept per request: the model sees 8 s; a little more lets the resampler's filter settle
# before the window starts.
_MAX_INPUT_BYTES = (mel.WINDOW_S * IN_RATE_HZ + IN_RATE_HZ // 10) * 2


class MissingSmartTurnModel(MissingExtra):
    """The ``pipecat-ai`` wheel (which holds the model file) is not installed."""

    def __init__(self, detail: str) -> None:
        super().__init__(_FEATURE, "pipecat", _EXTRA)
        # MissingExtra's hint names the extra; the model wheel is installed on its own.
        self.args = (f"{_FEATURE}: {detail}; {_MODEL_HINT}",)

    def __str__(self) -> str:
        return str(self.args[0])


def model_path() -> Path:
    """Where the installed ``pipecat-ai`` wheel keeps the model (``pipecat`` is not imported:
    it needs dependencies we do not install)."""
    spec = importlib.util.find_spec("pipecat")  # top-level: locates without importing
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingSmartTurnModel("module 'pipecat' not installed")
    for location in locations:
        candidate = Path(location).joinpath(*_MODEL_DIR, MODEL_FILE)
        if candidate.is_file():
            return candidate
    raise MissingSmartTurnModel(f"{MODEL_FILE} is not in {', '.join(locations)}")


def features(pcm16_8k: bytes) -> npt.NDArray[np.float32]:
    """The model's input (1, 80, 800) for the last 8 s of 8 kHz 16-bit PCM."""
    tail = pcm16_8k[-_MAX_INPUT_BYTES:]
    tail = tail[: len(tail) // 2 * 2]
    samples = np.frombuffer(tail, dtype="<i2").astype(np.float32) * np.float32(1.0 / 32768.0)
    wideband = soxr.resample(samples, IN_RATE_HZ, mel.SAMPLE_RATE_HZ, quality="HQ")
    return mel.log_mel(mel.fit_window(np.asarray(wideband, np.float32)))[None, :, :]


class _Runtime:
    """The process's session and the one thread that runs it."""

    def __init__(self, path: Path) -> None:
        require(_EXTRA, _FEATURE, "onnxruntime")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One core per inference: parallelism comes from the calls, not inside one model run.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        self.session: Any = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = [(i.name, tuple(i.shape[1:])) for i in self.session.get_inputs()]
        if inputs != [(_INPUT, (mel.N_MELS, mel.N_FRAMES))]:
            raise ValueError(f"{path}: unexpected model inputs {inputs}")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")
        self.infer(b"")  # the first run allocates and plans: do it before the first call
        logger.info("loaded Smart Turn model %s", path)

    def infer(self, pcm16_8k: bytes) -> float:
        (scores,) = self.session.run(None, {_INPUT: features(pcm16_8k)})
        # The exported graph ends in a sigmoid (its output is named "logits" all the same).
        return float(scores[0, 0])


class _Shared:
    """The process's one runtime, created on first use (by ``load`` or the first request)."""

    lock = threading.Lock()
    runtime: _Runtime | None = None

    @classmethod
    def get(cls) -> _Runtime:
        with cls.lock:
            if cls.runtime is None:
                cls.runtime = _Runtime(model_path())
            return cls.runtime


def available() -> bool:
    """Whether the model can be loaded here: onnxruntime and the model file are installed."""
    try:
        require(_EXTRA, _FEATURE, "onnxruntime")
        model_path()
    except MissingExtra:
        return False
    return True


def load() -> None:
    """Load the model now (at start-up, so the first pause of the first call does not wait
    for it); raises ``MissingExtra`` naming what to install if it cannot be used."""
    require(_EXTRA, _FEATURE, "onnxruntime")
    model_path()
    _Shared.get()


class SmartTurn:
    """One call's end-of-turn model (``agent.call.frames.TurnEndModel``); cheap to create: the
    session and thread behind it are the process's."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def complete(self, pcm16_8k: bytes) -> float:
        """Probability (0-1) that the turn whose audio (8 kHz 16-bit little-endian PCM, up to
        the last 8 s) is ``pcm16_8k`` is finished."""
        async with self._lock:  # queued: one inference of this call at a time
            loop = asyncio.get_running_loop()
            runtime = _Shared.runtime
            if runtime is None:  # loading reads an 8.7 MB file: not on the event loop either
                runtime = await loop.run_in_executor(None, _Shared.get)
            return await loop.run_in_executor(runtime.executor, runtime.infer, pcm16_8k)
