"""Voice activity detection on 20 ms frames of 8 kHz 16-bit PCM.

Two implementations of one small Protocol:

* :class:`WebRtcVad` — the WebRTC GMM detector (``webrtcvad`` module, a core dependency).
  A few microseconds a frame; decides every frame on its own.
* :class:`SileroVad` — the Silero neural detector, run with onnxruntime from the
  ``silero_vad.onnx`` file inside the installed ``silero-vad`` wheel (the package itself is
  never imported: it pulls in torch). More robust to noise; optional (``pip install
  slotline[silero]`` plus ``pip install --no-deps silero-vad``).

Both are stateful per call: create one per call and ``reset()`` between streams.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from slotline.audio.framing import FRAME_MS

logger = logging.getLogger(__name__)


class VadUnavailable(RuntimeError):
    """A VAD backend cannot be used here (missing package or model file); says how to fix it."""


class Vad(Protocol):
    def is_speech(self, pcm16_frame: bytes) -> bool:
        """Decide one 20 ms frame of 8 kHz little-endian int16 audio (320 bytes)."""
        ...

    def reset(self) -> None:
        """Forget everything learned from earlier frames."""
        ...


def _check_frame(pcm16_frame: bytes, frame_bytes: int, sample_rate_hz: int) -> None:
    if len(pcm16_frame) != frame_bytes:
        raise ValueError(
            f"VAD expects one {FRAME_MS} ms frame of {sample_rate_hz} Hz 16-bit PCM "
            f"({frame_bytes} bytes), got {len(pcm16_frame)} bytes"
        )


class WebRtcVad:
    """The WebRTC detector. ``aggressiveness`` 0 (keeps most audio) to 3 (drops most noise)."""

    _RATES_HZ = (8000, 16000, 32000, 48000)

    def __init__(self, aggressiveness: int = 2, sample_rate_hz: int = 8000) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness}")
        if sample_rate_hz not in self._RATES_HZ:
            raise ValueError(
                f"WebRTC VAD supports {self._RATES_HZ} Hz, got sample_rate_hz={sample_rate_hz}"
            )
        try:
            import webrtcvad
        except ImportError as exc:  # a core dependency, but say so clearly if it is missing
            raise VadUnavailable(
                "WebRtcVad needs the `webrtcvad` module: pip install webrtcvad-wheels"
            ) from exc
        self._module: Any = webrtcvad
        self.aggressiveness = aggressiveness
        self.sample_rate_hz = sample_rate_hz
        self.frame_bytes = sample_rate_hz * FRAME_MS // 1000 * 2
        self._samples = self.frame_bytes // 2
        # The C function behind ``webrtcvad.Vad.is_speech``, called straight: this runs for
        # every frame of every call, and the wrapper's own checks (the length, again) cost
        # ~0.25 µs of its ~1.6 µs. Through the wrapper where the package is laid out otherwise.
        self._process: Any = getattr(getattr(webrtcvad, "_webrtcvad", None), "process", None)
        self._vad: Any = None
        self._handle: Any = None
        self.reset()

    def is_speech(self, pcm16_frame: bytes) -> bool:
        if len(pcm16_frame) != self.frame_bytes:  # checked inline: this runs 50 times a second
            _check_frame(pcm16_frame, self.frame_bytes, self.sample_rate_hz)
        if self._handle is None:
            return bool(self._vad.is_speech(pcm16_frame, self.sample_rate_hz))
        return bool(self._process(self._handle, self.sample_rate_hz, pcm16_frame, self._samples))

    def reset(self) -> None:
        # The C detector adapts its noise model over time and has no reset of its own.
        self._vad = self._module.Vad(self.aggressiveness)
        self._handle = getattr(self._vad, "_vad", None) if self._process is not None else None


# --- Silero ---------------------------------------------------------------------------------

_SILERO_RATE_HZ = 8000
_SILERO_WINDOW = 256  # samples per inference at 8 kHz (32 ms); the model's fixed size
_SILERO_CONTEXT = 32  # trailing samples of the previous window prepended to each input
_SILERO_STATE_SHAPE = (2, 1, 128)
_SILERO_INPUTS = frozenset({"input", "state", "sr"})
_INSTALL_HINT = "pip install onnxruntime && pip install --no-deps silero-vad"


def silero_model_path() -> Path:
    """Where the installed ``silero-vad`` wheel keeps ``silero_vad.onnx`` (not importing it)."""
    spec = importlib.util.find_spec("silero_vad")  # top-level: locates without importing
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise VadUnavailable(f"SileroVad needs the silero-vad wheel for its model: {_INSTALL_HINT}")
    for location in locations:
        candidate = Path(location) / "data" / "silero_vad.onnx"
        if candidate.is_file():
            return candidate
    raise VadUnavailable(
        f"silero_vad.onnx is not in the installed silero-vad package ({', '.join(locations)}); "
        f"reinstall it: {_INSTALL_HINT}"
    )


@functools.lru_cache(maxsize=4)
def _load_session(model_path: Path) -> Any:
    """One onnxruntime session per model file, shared by every call: ``run`` is thread-safe
    and the recurrent state travels in the inputs, so sessions hold no per-call data."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise VadUnavailable(f"SileroVad needs onnxruntime: {_INSTALL_HINT}") from exc
    options = onnxruntime.SessionOptions()
    # One thread: the call's event loop runs it inline, and parallelism comes from many calls.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise VadUnavailable(f"cannot load Silero model {model_path}: {exc}") from exc
    names = {node.name for node in session.get_inputs()}
    if names != _SILERO_INPUTS:
        raise VadUnavailable(
            f"{model_path} has inputs {sorted(names)}, expected {sorted(_SILERO_INPUTS)}"
        )
    logger.info("loaded Silero VAD model %s", model_path)
    return session


class SileroVad:
    """The Silero detector over 8 kHz audio.

    The model consumes 256-sample windows; 20 ms frames are 160 samples, so frames are buffered
    into windows and ``is_speech`` reports the most recent window's probability against
    ``threshold`` (a frame that completes no window repeats the previous decision).
    """

    def __init__(self, threshold: float = 0.5, model_path: Path | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        self.threshold = threshold
        self.sample_rate_hz = _SILERO_RATE_HZ
        self.frame_bytes = _SILERO_RATE_HZ * FRAME_MS // 1000 * 2
        self._session = _load_session(model_path or silero_model_path())
        # Buffers reused on every frame: [context | window] is the model input.
        self._input: npt.NDArray[np.float32] = np.zeros(
            (1, _SILERO_CONTEXT + _SILERO_WINDOW), np.float32
        )
        self._window = self._input[0, _SILERO_CONTEXT:]
        self._sr = np.array(_SILERO_RATE_HZ, dtype=np.int64)
        self._output_names = ["output", "stateN"]
        self.reset()

    @property
    def probability(self) -> float:
        """Speech probability of the most recent window (0.0 before the first)."""
        return self._probability

    def reset(self) -> None:
        self._input.fill(0.0)
        self._filled = 0
        self._state: npt.NDArray[np.float32] = np.zeros(_SILERO_STATE_SHAPE, np.float32)
        self._probability = 0.0

    def is_speech(self, pcm16_frame: bytes) -> bool:
        _check_frame(pcm16_frame, self.frame_bytes, self.sample_rate_hz)
        samples = np.frombuffer(pcm16_frame, dtype="<i2")
        taken = min(samples.shape[0], _SILERO_WINDOW - self._filled)
        self._store(samples[:taken], self._filled)
        self._filled += taken
        if self._filled == _SILERO_WINDOW:
            self._infer()
            rest = samples[taken:]
            self._store(rest, 0)
            self._filled = rest.shape[0]
        return self._probability >= self.threshold

    def _store(self, samples: npt.NDArray[np.int16], at: int) -> None:
        target = self._window[at : at + samples.shape[0]]
        np.multiply(samples, np.float32(1.0 / 32768.0), out=target, casting="unsafe")

    def _infer(self) -> None:
        feeds = {"input": self._input, "state": self._state, "sr": self._sr}
        output, state = self._session.run(self._output_names, feeds)
        self._state = state
        self._probability = float(output[0, 0])
        # The last samples of this window become the next input's context.
        self._input[0, :_SILERO_CONTEXT] = self._input[0, -_SILERO_CONTEXT:]
