"""The Deepgram emulator's handshake check: the ``/v1/listen`` query against the spec.

``QUERY_PARAMETERS`` is the asyncapi spec's parameter table (../shared/specs/deepgram/, kept
equal to it by a test): unknown names, values outside an enum and repeats of single-valued names
are ``BadRequest`` (the real service's HTTP 400), as is any audio format but the two the
emulator decodes (8 kHz mono ``mulaw`` or ``linear16``). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

_BOOL = ("true", "false")
_MODELS = (
    "nova-3", "nova-3-general", "nova-3-medical", "nova-2", "nova-2-general", "nova-2-meeting",
    "nova-2-finance", "nova-2-conversationalai", "nova-2-voicemail", "nova-2-video",
    "nova-2-medical", "nova-2-drivethru", "nova-2-automotive", "nova", "nova-general",
    "nova-phonecall", "nova-medical", "enhanced", "enhanced-general", "enhanced-meeting",
    "enhanced-phonecall", "enhanced-finance", "base", "meeting", "phonecall", "finance",
    "conversationalai", "voicemail", "video", "custom",
)
_ENCODINGS = ("linear16", "linear32", "flac", "alaw", "mulaw", "amr-nb", "amr-wb", "opus",
              "ogg-opus", "speex", "g729")
# The spec's /v1/listen query: name -> allowed values (None: the spec says "Any type").
QUERY_PARAMETERS: dict[str, tuple[str, ...] | None] = {
    "callback": None, "callback_method": ("POST", "GET", "PUT", "DELETE"), "channels": None,
    "detect_entities": _BOOL, "diarize": _BOOL, "diarize_model": ("latest", "v1"),
    "dictation": _BOOL, "encoding": _ENCODINGS, "endpointing": None, "extra": None,
    "interim_results": _BOOL, "keyterm": None, "keywords": None, "language": None,
    "mip_opt_out": None, "model": _MODELS, "multichannel": _BOOL, "numerals": _BOOL,
    "profanity_filter": _BOOL, "punctuate": _BOOL,
    "redact": ("true", "false", "pci", "numbers", "aggressive_numbers", "ssn"), "replace": None,
    "sample_rate": None, "search": None, "smart_format": _BOOL, "tag": None,
    "utterance_end_ms": None, "vad_events": _BOOL, "version": None,
}
_REPEATABLE = frozenset({"extra", "keyterm", "keywords", "redact", "replace", "search", "tag"})


@dataclass(frozen=True, slots=True)
class ListenParams:
    model: str
    interim_results: bool
    endpointing_ms: int | None  # None: endpointing=false
    utterance_end_ms: int | None
    vad_events: bool
    linear16: bool = False  # audio is 16-bit PCM (Pipecat's Deepgram service), not mu-law
    keyterms: tuple[str, ...] = ()  # ``keyterm`` (repeatable): in effect from the start


class BadRequest(ValueError):
    """A handshake the real service answers with HTTP 400."""


def parse_listen_query(query: str) -> ListenParams:
    values = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    for name, given in values.items():
        if name not in QUERY_PARAMETERS:
            raise BadRequest(f"unknown query parameter {name!r}")
        if len(given) > 1 and name not in _REPEATABLE:
            raise BadRequest(f"query parameter {name!r} given {len(given)} times")
        allowed = QUERY_PARAMETERS[name]
        if allowed is not None and any(value not in allowed for value in given):
            raise BadRequest(f"invalid value for {name!r}: {given[0]!r}")

    def one(name: str, default: str) -> str:
        return values.get(name, [default])[0]

    audio_format = (one("encoding", ""), one("sample_rate", ""), one("channels", "1"))
    if audio_format not in (("mulaw", "8000", "1"), ("linear16", "8000", "1")):
        raise BadRequest("this emulator decodes only encoding=mulaw|linear16&sample_rate=8000"
                         "&channels=1")
    endpointing = one("endpointing", "10")  # the spec's default
    utterance_end = one("utterance_end_ms", "")
    try:
        endpointing_ms = None if endpointing == "false" else max(0, int(endpointing))
        utterance_end_ms = int(utterance_end) if utterance_end else None
    except ValueError:
        raise BadRequest("endpointing and utterance_end_ms take milliseconds") from None
    return ListenParams(
        model=one("model", "base"),
        interim_results=one("interim_results", "false") == "true",
        endpointing_ms=endpointing_ms,
        utterance_end_ms=utterance_end_ms,
        vad_events=one("vad_events", "false") == "true",
        linear16=audio_format[0] == "linear16",
        keyterms=tuple(values.get("keyterm", ())),
    )
