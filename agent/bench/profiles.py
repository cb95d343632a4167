"""Vendor latency profiles: how slow the emulated Deepgram, OpenAI and ElevenLabs answer.

``instant`` (no added delay: what is left is the server's own cost), ``cloud`` (typical hosted
vendors, the numbers of issue 6: STT finalize 150 ms, LLM first token 300 ms, TTS first byte
150 ms, each with uniform jitter — the distribution the emulators implement), ``real`` (no
emulators: the server talks to whatever its configuration names, real vendors when keys are
present) or a YAML file shaped like ``Profile.as_dict()``::

    name: slow-llm
    stt: {finalize_ms: 150, result_ms: 250, jitter_ms: 30}
    llm: {first_token_ms: 800, token_interval_ms: 20, jitter_ms: 100}
    tts: {first_byte_ms: 150, chunk_interval_ms: 60, jitter_ms: 20}

Missing keys are 0. The ``cloud`` numbers equal the emulators' own cloud profiles (a test keeps
them so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from slotline.providers.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SttLatency:
    finalize_ms: float = 0.0  # Finalize → its final result
    result_ms: float = 0.0  # audio → interim/endpointed results
    jitter_ms: float = 0.0  # uniform 0..jitter added to both


@dataclass(frozen=True, slots=True)
class LlmLatency:
    first_token_ms: float = 0.0
    token_interval_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform 0..jitter added to every delay


@dataclass(frozen=True, slots=True)
class TtsLatency:
    first_byte_ms: float = 0.0  # text flushed → its first audio
    chunk_interval_ms: float = 0.0  # between audio messages
    jitter_ms: float = 0.0  # uniform ±jitter on every delay


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    stt: SttLatency = field(default_factory=SttLatency)
    llm: LlmLatency = field(default_factory=LlmLatency)
    tts: TtsLatency = field(default_factory=TtsLatency)
    emulated: bool = True  # False: no emulators, the server's configured vendors

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "emulated": self.emulated, "stt": asdict(self.stt),
                "llm": asdict(self.llm), "tts": asdict(self.tts)}

    @classmethod
    def from_dict(cls, data: object, source: str = "profile") -> Profile:
        if not isinstance(data, dict):
            raise ConfigError(source, "(top)", "a profile is a mapping with stt, llm, tts")
        known = {"name", "emulated", "stt", "llm", "tts"}
        unknown = sorted(set(data) - known)
        if unknown:
            known_text = ", ".join(sorted(known))
            raise ConfigError(source, unknown[0], f"unknown key (known: {known_text})")
        name = data.get("name", Path(source).stem)
        if not isinstance(name, str) or not name:
            raise ConfigError(source, "name", "must be a non-empty string")
        emulated = data.get("emulated", True)
        if not isinstance(emulated, bool):
            raise ConfigError(source, "emulated", "must be true or false")
        return cls(
            name,
            _section(SttLatency, data.get("stt"), source, "stt"),
            _section(LlmLatency, data.get("llm"), source, "llm"),
            _section(TtsLatency, data.get("tts"), source, "tts"),
            emulated,
        )


_Section = TypeVar("_Section", SttLatency, LlmLatency, TtsLatency)


def _section(kind: type[_Section], data: object, source: str, key: str) -> _Section:
    if data is None:
        return kind()
    if not isinstance(data, dict):
        raise ConfigError(source, key, "must be a mapping of *_ms numbers")
    names = {f.name for f in fields(kind)}
    values: dict[str, float] = {}
    for name, value in data.items():
        if name not in names:
            raise ConfigError(source, f"{key}.{name}",
                              f"unknown key (known: {', '.join(sorted(names))})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(source, f"{key}.{name}", "must be a number of ms >= 0")
        values[name] = float(value)
    return kind(**values)


BUILTIN: dict[str, Profile] = {
    "instant": Profile("instant"),
    "cloud": Profile(
        "cloud",
        SttLatency(finalize_ms=150.0, result_ms=250.0, jitter_ms=30.0),
        LlmLatency(first_token_ms=300.0, token_interval_ms=20.0, jitter_ms=30.0),
        TtsLatency(first_byte_ms=150.0, chunk_interval_ms=60.0, jitter_ms=20.0),
    ),
    "real": Profile("real", emulated=False),
}


def load_profile(spec: str) -> Profile:
    """A built-in profile name or a YAML file."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError("--profile", spec,
                          f"not a built-in profile ({', '.join(BUILTIN)}) nor a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "(file)", f"not valid YAML: {exc}") from None
    return Profile.from_dict(data, str(path))
