"""A small ctypes binding to the espeak-ng C API (``speak_lib.h``), synchronous mode only.

The library keeps global state, so exactly one ``EspeakLibrary`` may exist per process and
every method must be called from the one thread that created it (``providers.tts.local``
owns that thread). In ``AUDIO_OUTPUT_SYNCHRONOUS`` mode ``espeak_Synth`` does not return
until the text is spoken: it calls the synth callback on the calling thread for every
buffer of 16-bit samples it produces, and stops early when the callback returns 1.

Constants are the values in speak_lib.h (API revision 12).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT: PLAYBACK=0, RETRIEVAL=1, SYNCHRONOUS=2, SYNCH_PLAYBACK=3
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_POSITION_TYPE: POS_CHARACTER=1, POS_WORD=2, POS_SENTENCE=3
POS_CHARACTER = 1
# espeak_Synth flags
CHARS_UTF8 = 0x1
ENDPAUSE = 0x1000  # add a sentence pause after the text (suppressed when unset)
# espeak_Initialize options: without DONT_EXIT the library calls exit() when data is missing
INITIALIZE_DONT_EXIT = 0x8000
# espeak_PARAMETER
PARAM_RATE = 1
PARAM_PITCH = 3
# espeak_ERROR
EE_OK = 0
EE_INTERNAL_ERROR = -1
EE_BUFFER_FULL = 1
EE_NOT_FOUND = 2

RATE_MIN_WPM = 80
RATE_MAX_WPM = 450
PITCH_MIN = 0
PITCH_MAX = 100

_BYTES_PER_SAMPLE = 2

# int cb(short *wav, int numsamples, espeak_EVENT *events); wav is taken as an address so the
# samples can be copied out with one string_at; the events are not used.
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

AudioHandler = Callable[[npt.NDArray[np.int16]], bool]
"""Receives each buffer of samples (a copy); returns True to abort the synthesis."""


class EspeakError(Exception):
    """An espeak-ng call returned an error code."""

    def __init__(self, function: str, code: int) -> None:
        super().__init__(f"{function} returned {_describe(code)}")
        self.function = function
        self.code = code


def _describe(code: int) -> str:
    names = {
        EE_INTERNAL_ERROR: "EE_INTERNAL_ERROR",
        EE_BUFFER_FULL: "EE_BUFFER_FULL",
        EE_NOT_FOUND: "EE_NOT_FOUND",
    }
    return names.get(code, f"error {code}")


class _Voice(ctypes.Structure):
    """``espeak_VOICE``; only read, for listing the installed voices."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class EspeakLibrary:
    """The loaded and initialised library. Create once, use from one thread only."""

    def __init__(self, library_path: str, data_path: str, *, buffer_ms: int) -> None:
        lib = ctypes.CDLL(library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text (NUL-terminated)
            ctypes.c_size_t,  # size in bytes
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position (0 = none)
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unsigned int *unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self._lib = lib

        rate_hz = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, buffer_ms, data_path.encode(), INITIALIZE_DONT_EXIT
        )
        if rate_hz <= 0:
            raise EspeakError("espeak_Initialize", rate_hz)
        self.sample_rate_hz: int = rate_hz
        self._on_audio: AudioHandler | None = None
        self._callback_error: BaseException | None = None
        # ctypes must keep the C thunk alive for as long as the library may call it
        self._callback = _SynthCallback(self._receive)
        lib.espeak_SetSynthCallback(self._callback)
        log.debug("espeak-ng initialised at %d Hz from %s", rate_hz, data_path)

    def set_voice(self, name: str) -> None:
        """Select a voice by name, language or file (``en-us``, ``en-us+f3``, ``gmw/en``)."""
        code = self._lib.espeak_SetVoiceByName(name.encode())
        if code != EE_OK:
            raise EspeakError("espeak_SetVoiceByName", code)

    def set_rate(self, rate_wpm: int) -> None:
        self._set_parameter(PARAM_RATE, rate_wpm)

    def set_pitch(self, pitch: int) -> None:
        self._set_parameter(PARAM_PITCH, pitch)

    def _set_parameter(self, parameter: int, value: int) -> None:
        code = self._lib.espeak_SetParameter(parameter, value, 0)
        if code != EE_OK:
            raise EspeakError("espeak_SetParameter", code)

    def voice_identifiers(self) -> list[str]:
        """The installed voices' file identifiers, such as ``gmw/en-US``."""
        voices = self._lib.espeak_ListVoices(None)
        found: list[str] = []
        index = 0
        while voices[index]:
            identifier = voices[index].contents.identifier
            if identifier:
                found.append(identifier.decode(errors="replace"))
            index += 1
        return found

    def synth(self, text: str, on_audio: AudioHandler, *, end_pause: bool) -> None:
        """Speak ``text``, handing each buffer to ``on_audio`` before returning.

        An exception raised by ``on_audio`` aborts the synthesis and is re-raised here.
        """
        encoded = text.encode("utf-8")
        flags = CHARS_UTF8 | (ENDPAUSE if end_pause else 0)
        self._on_audio = on_audio
        self._callback_error = None
        try:
            code = self._lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, flags, None, None
            )
        finally:
            self._on_audio = None
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error
        if code != EE_OK:
            raise EspeakError("espeak_Synth", code)

    def _receive(self, wav: int | None, sample_count: int, _events: int | None) -> int:
        # Runs inside espeak_Synth on the owning thread. An exception must not escape into C.
        handler = self._on_audio
        if handler is None:
            return 1
        if not wav or sample_count <= 0:  # NULL = end of synthesis; 0 samples = nothing yet
            return 0
        try:
            raw = ctypes.string_at(wav, sample_count * _BYTES_PER_SAMPLE)
            return 1 if handler(np.frombuffer(raw, dtype=np.int16)) else 0
        except BaseException as exc:  # re-raised by synth() once espeak has unwound
            self._callback_error = exc
            return 1
