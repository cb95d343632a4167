"""The labelled turn-end set: what the caller says, where it really ends, and what it means.

Two families of clips, synthesised at run time (flite's voices and espeak-ng; nothing is
downloaded) and labelled by construction, so the labels are exact:

* **Answers** to the booking flow's questions (name, e-mail, date, time, yes/no, phone). Each
  is said in pieces with a silence of 300-900 ms between them ("my name is ... anna smith",
  "j o h n ... at gmail dot com", "two oh two ... five five five ... oh one four two"). The
  labels are the pieces' spans in the clip: every silence between two pieces is an *internal
  pause* (the caller has not finished), the end of the last piece is where the utterance
  really ends. A few answers are said in one piece: the controls, for turn latency.
* **Events over the agent**, played while it talks: backchannels ("uh huh", "okay", "mm hmm"),
  a cough (shaped noise, two bursts), a burst of line noise — none of them an interruption —
  and real interruptions ("wait sorry actually wednesday"), labelled as such.

Each piece is trimmed to its voiced span (synthesisers pad with silence of their own) before
the pauses are put in, so a labelled pause is the silence the caller really leaves. Which
template, name, day and pause length a clip gets is drawn from a generator seeded with the
run's seed and the clip's identity: the same seed gives the same set.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import uuid
import wave
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from slotline.audio.framing import FRAME_MS, SAMPLE_RATE_HZ, ULAW_FRAME_BYTES, ULAW_SILENCE
from slotline.audio.loudness import VOICED_FLOOR_RMS, VOICED_WITHIN_DB
from slotline.audio.mulaw import decode_array, encode_array
from slotline.audio.resample import resample

PAUSE_MS = (300, 900)  # the internal pauses the issue asks about (uniform, 10 ms steps)
LEAD_IN_MS = 60  # silence before the first piece: the caller draws breath
_WINDOW = SAMPLE_RATE_HZ // 100  # 10 ms of samples: the trimming resolution
# A 10 ms window this far below the piece's loudest is the synthesiser's padding, not speech.
_TRIM_WITHIN_DB = 40.0
_TRIM_FLOOR_RMS = 20.0  # about -64 dBFS
_TRIM_MARGIN_WINDOWS = 1  # kept either side of the voiced span, so soft edges survive

FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
ESPEAK_VOICE = "espeak"  # espeak-ng's en-us with a male variant, unlike the server's own voice
DEFAULT_VOICES = (*FLITE_VOICES, ESPEAK_VOICE)

# Names, days and hours the offline recogniser's grammars know (providers/llm/rules/vocab.py).
_FIRST = ("john", "anna", "mark", "kate", "paul", "lisa", "david", "maria", "peter", "sarah")
_LAST = ("smith", "brown", "garcia", "miller", "wilson", "taylor", "clark", "lewis")
_DOMAINS = ("gmail", "example", "yahoo", "outlook")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
HOURS = ("two", "three", "four")  # p m: inside the demo's office hours ("one" is often misheard)


@dataclass(frozen=True, slots=True)
class Template:
    """An answer (or event) as pieces; a pause of ``PAUSE_MS`` goes between two pieces."""

    id: str
    kind: str  # answers: the question's extractor kind; events: what the event is
    parts: tuple[str, ...]


def _t(id_: str, kind: str, *parts: str) -> Template:
    return Template(id_, kind, parts)


ANSWERS: Mapping[str, tuple[Template, ...]] = {
    "name": (
        _t("name.lead", "name", "my name is", "{first} {last}"),
        _t("name.surname", "name", "it's {first}", "{last}"),
        _t("name.first_then_last", "name", "my name is {first}", "{last}"),
        _t("name.plain", "name", "{first} {last}"),
    ),
    "email": (
        _t("email.spelled", "email", "{spelled}", "at {domain} dot com"),
        _t("email.three_groups", "email", "my email is", "{first} dot {last}",
           "at {domain} dot com"),
        _t("email.domain_split", "email", "{first} {last}", "at {domain}", "dot com"),
        _t("email.slow_letters", "email", "{l1}", "{l2}", "{rest} at {domain} dot com"),
        _t("email.no", "email", "no thanks"),
    ),
    "date": (
        _t("date.lead", "date", "i'd like", "next {day}"),
        _t("date.tail", "date", "next {day}", "please"),
        _t("date.um", "date", "um", "next {day}"),
        _t("date.plain", "date", "next {day}"),
    ),
    "time": (
        _t("time.meridiem", "time", "at {hour}", "p m"),
        _t("time.around", "time", "around", "{hour} in the afternoon"),
        _t("time.tail", "time", "{hour}", "in the afternoon please"),
        _t("time.plain", "time", "{hour} p m"),
    ),
    "yes_no": (
        _t("yes.please", "yes_no", "yes", "please"),
        _t("yes.um", "yes_no", "um", "yes that works"),
        _t("yes.plain", "yes_no", "yes"),
    ),
    "phone": (
        _t("phone.three_groups", "phone", "two oh two", "five five five", "oh one four two"),
        _t("phone.lead", "phone", "my number is", "six one seven", "five five five",
           "two three four one"),
        _t("phone.plain", "phone", "four one five five five five one two three four"),
    ),
}
BOOKING_KINDS = ("name", "email", "date", "time", "yes_no")  # the demo flow's order
CANCEL = _t("intent.cancel", "intent", "cancel my appointment")  # leads to the phone question

BACKCHANNELS = (_t("bc.uh_huh", "backchannel", "uh huh"), _t("bc.okay", "backchannel", "okay"),
                _t("bc.mhm", "backchannel", "mm hmm"))
INTERRUPTIONS = (_t("int.wednesday", "interruption", "wait sorry actually wednesday"),
                 _t("int.hold_on", "interruption", "hold on can i change the day"))
INTERRUPTION_KINDS = frozenset({"interruption"})


@dataclass(frozen=True, slots=True)
class Labels:
    """Where the caller's voice is in a clip, in ms from the clip's first sample."""

    pieces_ms: tuple[tuple[int, int], ...]  # voiced pieces, in order
    interruption: bool | None = None  # events: does it mean to take the floor? answers: None

    @property
    def end_ms(self) -> int:
        """Where the utterance really ends."""
        return self.pieces_ms[-1][1]

    @property
    def pauses_ms(self) -> tuple[tuple[int, int], ...]:
        """The internal pauses: a turn that ends in one cut the caller off."""
        return tuple((a[1], b[0]) for a, b in zip(self.pieces_ms, self.pieces_ms[1:],
                                                     strict=False))


@dataclass(frozen=True, slots=True)
class Clip:
    id: str  # voice/template/round
    voice: str
    template: str
    kind: str
    text: str  # the words, " ... " at each pause
    audio: bytes  # 8 kHz mu-law, as the simulated caller sends it
    labels: Labels

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "voice": self.voice, "template": self.template,
                "kind": self.kind, "text": self.text,
                "pieces_ms": [list(p) for p in self.labels.pieces_ms],
                "pauses_ms": [b - a for a, b in self.labels.pauses_ms],
                "end_ms": self.labels.end_ms, "interruption": self.labels.interruption}


# --- assembling (pure) ------------------------------------------------------------------------

def voiced_bounds(samples: npt.NDArray[np.int16]) -> tuple[int, int] | None:
    """Sample indexes [start, stop) of a piece's voiced span (trim rule at the top), or None."""
    windows = len(samples) // _WINDOW
    if windows == 0:
        return None
    frames = samples[: windows * _WINDOW].astype(np.float64).reshape(windows, _WINDOW)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    threshold = max(float(rms.max()) * 10 ** (-_TRIM_WITHIN_DB / 20), _TRIM_FLOOR_RMS)
    voiced = np.flatnonzero(rms >= threshold)
    if not voiced.size:
        return None
    first = max(int(voiced[0]) - _TRIM_MARGIN_WINDOWS, 0)
    last = min(int(voiced[-1]) + 1 + _TRIM_MARGIN_WINDOWS, windows)
    return first * _WINDOW, last * _WINDOW


def first_voiced_ms(ulaw: bytes) -> int:
    """Where the simulated caller's first voiced 20 ms frame of ``ulaw`` starts (its rule: RMS
    within ``VOICED_WITHIN_DB`` of the loudest frame and above ``VOICED_FLOOR_RMS``). The
    caller reports when it sent that frame; this puts the clip's labels on its clock."""
    padded = ulaw + bytes([ULAW_SILENCE]) * (-len(ulaw) % ULAW_FRAME_BYTES)
    frames = decode_array(padded).astype(np.float64).reshape(-1, ULAW_FRAME_BYTES)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    threshold = max(float(rms.max()) * 10 ** (-VOICED_WITHIN_DB / 20), VOICED_FLOOR_RMS)
    voiced = np.flatnonzero(rms >= threshold)
    return int(voiced[0]) * FRAME_MS if voiced.size else 0


def assemble(
    pieces: Sequence[npt.NDArray[np.int16]], pauses_ms: Sequence[int], *,
    interruption: bool | None = None,
) -> tuple[bytes, Labels]:
    """Pieces (8 kHz int16), each trimmed to its voiced span, joined by ``pauses_ms`` of
    silence after a ``LEAD_IN_MS`` lead-in; the mu-law audio and its labels."""
    if len(pauses_ms) != len(pieces) - 1:
        raise ValueError(f"{len(pieces)} pieces need {len(pieces) - 1} pauses")
    per_ms = SAMPLE_RATE_HZ // 1000
    out: list[npt.NDArray[np.int16]] = [np.zeros(LEAD_IN_MS * per_ms, np.int16)]
    spans: list[tuple[int, int]] = []
    at = LEAD_IN_MS * per_ms
    for index, piece in enumerate(pieces):
        bounds = voiced_bounds(piece)
        if bounds is None:
            raise ValueError(f"piece {index} is silent")
        voiced = piece[bounds[0]:bounds[1]]
        spans.append((at // per_ms, (at + len(voiced)) // per_ms))
        out.append(voiced)
        at += len(voiced)
        if index < len(pauses_ms):
            gap = np.zeros(pauses_ms[index] * per_ms, np.int16)
            out.append(gap)
            at += len(gap)
    return encode_array(np.concatenate(out)), Labels(tuple(spans), interruption)


def draw_pause_ms(rng: random.Random) -> int:
    return 10 * rng.randint(PAUSE_MS[0] // 10, PAUSE_MS[1] // 10)


def fill(template: Template, words: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(part.format(**words) for part in template.parts)


def caller_words(rng: random.Random, day: str, hour: str) -> dict[str, str]:
    first = rng.choice(_FIRST)
    return {"first": first, "last": rng.choice(_LAST), "domain": rng.choice(_DOMAINS),
            "spelled": " ".join(first), "l1": first[0], "l2": first[1],
            "rest": " ".join(first[2:]), "day": day, "hour": hour}


# --- noises (pure) ----------------------------------------------------------------------------

def cough(rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """Two bursts of noise with a sharp attack and a fast decay, loud in the 300-3000 Hz band
    like a cough on a phone line (not a voice: no pitch, no formants)."""
    bursts: list[npt.NDArray[np.float64]] = []
    for level, length_ms in ((rng.uniform(5000, 9000), rng.integers(180, 280)),
                             (rng.uniform(2500, 5000), rng.integers(120, 200))):
        n = int(length_ms) * SAMPLE_RATE_HZ // 1000
        noise = _band(rng.normal(0, 1, n), 300, 3000)
        t = np.arange(n) / SAMPLE_RATE_HZ
        envelope = np.minimum(t / 0.008, 1.0) * np.exp(-t / 0.07)
        bursts.append(level * noise * envelope / max(float(np.abs(noise).max()), 1e-9) * 2)
        bursts.append(np.zeros(int(rng.integers(60, 120)) * SAMPLE_RATE_HZ // 1000))
    return np.clip(np.concatenate(bursts[:-1]), -32000, 32000).astype(np.int16)


def line_noise(rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """A burst of crackle on the line: 150-450 ms of broadband noise with random clicks."""
    n = int(rng.integers(150, 450)) * SAMPLE_RATE_HZ // 1000
    noise = rng.normal(0, rng.uniform(1500, 4000), n)
    clicks = rng.random(n) < 0.01
    noise[clicks] += rng.choice((-1.0, 1.0), int(clicks.sum())) * 20000
    return np.clip(noise, -32000, 32000).astype(np.int16)


def _band(noise: npt.NDArray[np.float64], low_hz: float, high_hz: float) -> npt.NDArray[np.float64]:
    spectrum = np.fft.rfft(noise)
    hz = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE_HZ)
    spectrum[(hz < low_hz) | (hz > high_hz)] = 0
    return np.fft.irfft(spectrum, len(noise))


# --- synthesis (subprocess and ctypes; run before the calls, never during one) --------------

Synthesise = Callable[[str, str], npt.NDArray[np.int16]]
"""(voice, text) → 8 kHz int16 samples."""


def _read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as wav:
        rate_hz = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return samples if rate_hz == SAMPLE_RATE_HZ else resample(samples, rate_hz, SAMPLE_RATE_HZ)


class Synth:
    """flite's voices by name and ``espeak`` (espeak-ng through the library the server's own
    offline voice uses); each (voice, text) is synthesised once."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], npt.NDArray[np.int16]] = {}
        self._espeak: object | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="slotline-turn-end-")

    def close(self) -> None:
        self._folder.cleanup()

    def __call__(self, voice: str, text: str) -> npt.NDArray[np.int16]:
        key = (voice, text)
        if key not in self._memo:
            self._memo[key] = self._espeak_say(text) if voice == ESPEAK_VOICE else \
                self._flite_say(voice, text)
        return self._memo[key]

    def prefetch(self, said: Iterable[tuple[str, str]], workers: int = 4) -> None:
        """Synthesise the flite lines of ``said`` (voice, text) several at a time (each is a
        process of its own); espeak's stay for the calling thread, which owns the library."""
        todo = sorted({key for key in said if key[0] != ESPEAK_VOICE and key not in self._memo})
        with ThreadPoolExecutor(workers) as pool:
            for key, samples in zip(todo, pool.map(lambda k: self._flite_say(*k), todo),
                                    strict=True):
                self._memo[key] = samples

    def _flite_say(self, voice: str, text: str) -> npt.NDArray[np.int16]:
        wav = Path(self._folder.name) / f"{uuid.uuid4().hex}.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
        return _read_wav(wav)

    def _espeak_say(self, text: str) -> npt.NDArray[np.int16]:
        import espeakng_loader

        from slotline.providers.tts._espeak import EspeakLibrary

        if self._espeak is None:
            library = EspeakLibrary(espeakng_loader.get_library_path(),
                                    espeakng_loader.get_data_path(), buffer_ms=200)
            library.set_voice("en-us+m3")
            library.set_rate(160)
            self._espeak = library
        assert isinstance(self._espeak, EspeakLibrary)
        chunks: list[npt.NDArray[np.int16]] = []

        def keep(buffer: npt.NDArray[np.int16]) -> bool:
            chunks.append(buffer)  # already a copy
            return False  # go on

        self._espeak.synth(text, keep, end_pause=False)
        return resample(np.concatenate(chunks), self._espeak.sample_rate_hz, SAMPLE_RATE_HZ)


def said(speak: Synthesise, voice: str, template: Template, words: Mapping[str, str],
         rng: random.Random, tag: str) -> Clip:
    """``template`` in ``voice``, its pieces joined by pauses drawn from ``rng``."""
    parts = fill(template, words)
    pauses = [draw_pause_ms(rng) for _ in parts[1:]]
    interruption = None if template.kind in ANSWERS or template.kind == "intent" else \
        template.kind in INTERRUPTION_KINDS
    audio, labels = assemble([speak(voice, p) for p in parts], pauses,
                             interruption=interruption)
    return Clip(f"{voice}/{template.id}/{tag}", voice, template.id, template.kind,
                " ... ".join(parts), audio, labels)


def noise_clip(kind: str, voice: str, seed: int, tag: str) -> Clip:
    """A cough or a burst of line noise (``kind``), seeded per voice slot and tag."""
    rng = np.random.default_rng([seed, sum(map(ord, voice)), sum(map(ord, tag))])
    samples = cough(rng) if kind == "cough" else line_noise(rng)
    audio, labels = assemble([samples], [], interruption=False)
    return Clip(f"{voice}/{kind}/{tag}", voice, kind, kind, f"({kind})", audio, labels)
