"""The Deepgram live-listen codec without sockets: server messages as Deepgram documents them
in, typed messages out; malformed frames raise ProtocolError; the listen URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from slotline.providers.errors import ProtocolError
from slotline.providers.stt import deepgram_wire as wire

RESULTS = {
    "type": "Results",
    "channel_index": [0, 1],
    "duration": 1.98,
    "start": 5.99,
    "is_final": True,
    "speech_final": True,
    "from_finalize": False,
    "channel": {"alternatives": [{
        "transcript": "my name is john smith",
        "confidence": 0.98,
        "words": [
            {"word": "my", "start": 6.1, "end": 6.3, "confidence": 0.99, "punctuated_word": "My"},
            {"word": "name", "start": 6.3, "end": 6.6, "confidence": 0.97},
        ],
    }]},
    "metadata": {
        "request_id": "52cc0efe-fa77-4aa7-b79c-0dda09de2f14",
        "model_info": {"name": "2-general-nova", "version": "2024-01-18.26916", "arch": "nova-2"},
        "model_uuid": "c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c",
    },
}


def frame(message: dict[str, object]) -> str:
    return orjson.dumps(message).decode()


def test_results_parse_to_a_typed_message() -> None:
    message = wire.parse_server_message(frame(RESULTS))
    assert isinstance(message, wire.Results)
    assert message.is_final and message.speech_final and not message.from_finalize
    assert message.transcript == "my name is john smith" and message.confidence == 0.98
    assert message.channel_index == (0, 1)
    assert message.end_s == pytest.approx(7.97)
    assert message.words[0] == wire.Word("my", 6.1, 6.3, 0.99, "My")
    assert message.words[1].punctuated_word is None
    assert message.request_id == "52cc0efe-fa77-4aa7-b79c-0dda09de2f14"


def test_optional_flags_default_to_false_and_bytes_are_accepted() -> None:
    minimal = {k: v for k, v in RESULTS.items()
               if k not in ("is_final", "speech_final", "from_finalize")}
    message = wire.parse_server_message(frame(minimal).encode())
    assert isinstance(message, wire.Results)
    assert (message.is_final, message.speech_final, message.from_finalize) == (False,) * 3


def test_results_without_alternatives_are_empty() -> None:
    message = wire.parse_server_message(frame(RESULTS | {"channel": {"alternatives": []}}))
    assert isinstance(message, wire.Results)
    assert (message.transcript, message.words) == ("", ())


def test_events_and_metadata() -> None:
    assert wire.parse_server_message(
        '{"type":"SpeechStarted","channel":[0,1],"timestamp":1.5}'
    ) == wire.SpeechStarted((0, 1), 1.5)
    assert wire.parse_server_message(
        '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2}'
    ) == wire.UtteranceEnd((0, 1), 2.0)
    metadata = {
        "type": "Metadata", "transaction_key": "deprecated",
        "request_id": "8c8ebea9-dbec-45fa-a035-e4632cb05b5f",
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "created": "2024-08-29T22:37:55.202Z", "duration": 0.0, "channels": 0,
    }
    assert wire.parse_server_message(frame(metadata)) == wire.Metadata(
        "8c8ebea9-dbec-45fa-a035-e4632cb05b5f", 0.0, 0
    )


def test_unknown_types_are_not_errors() -> None:
    assert wire.parse_server_message('{"type":"Warning","description":"x"}') == (
        wire.UnknownMessage("Warning")
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ('{"type": "Results", "channel_index": [0, 1], "start": ', "deepgram.json"),
        ("[1, 2]", "deepgram.json"),
        (b"\x00\x01binary", "deepgram.binary"),
        ('{"channel": {}}', "deepgram.type"),
        (frame(RESULTS | {"is_final": "true"}), "deepgram.Results"),
        (frame(RESULTS | {"start": True}), "deepgram.Results"),
        (frame(RESULTS | {"channel_index": [0, "1"]}), "deepgram.Results"),
        (frame(RESULTS | {"channel": {"alternatives": [{"transcript": "x"}]}}), "deepgram.Results"),
        (frame(RESULTS | {"channel": []}), "deepgram.Results"),
        ('{"type":"UtteranceEnd","channel":[0,1]}', "deepgram.UtteranceEnd"),
        ('{"type":"SpeechStarted","channel":0,"timestamp":1}', "deepgram.SpeechStarted"),
        ('{"type":"Metadata","request_id":"r","duration":1,"channels":1.5}', "deepgram.Metadata"),
    ],
)
def test_malformed_frames_raise_protocol_error(data: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        wire.parse_server_message(data)
    assert raised.value.code == code


def test_listen_url_carries_the_documented_query() -> None:
    url = wire.listen_url("wss://api.deepgram.com/", wire.ListenOptions(endpointing_ms=250))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "api.deepgram.com", "/v1/listen")
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "model": "nova-3", "encoding": "mulaw", "sample_rate": "8000", "channels": "1",
        "interim_results": "true", "endpointing": "250", "utterance_end_ms": "1000",
        "vad_events": "true", "smart_format": "true", "punctuate": "true",
    }
    off = wire.listen_url("ws://127.0.0.1:9", wire.ListenOptions(
        endpointing_ms=None, utterance_end_ms=None, language="en-US"))
    query = parse_qs(urlsplit(off).query)
    assert query["endpointing"] == ["false"] and query["language"] == ["en-US"]
    assert "utterance_end_ms" not in query


def test_control_frames() -> None:
    for text, kind in ((wire.KEEPALIVE, "KeepAlive"), (wire.FINALIZE, "Finalize"),
                       (wire.CLOSE_STREAM, "CloseStream")):
        assert orjson.loads(text) == {"type": kind}
