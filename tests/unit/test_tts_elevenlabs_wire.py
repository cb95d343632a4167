"""The ElevenLabs WebSocket codec, both directions, without sockets."""

from __future__ import annotations

import base64

import orjson
import pytest

from slotline.providers.errors import ProtocolError
from slotline.providers.tts.elevenlabs_wire import (
    Alignment,
    AudioReceived,
    ClientMessage,
    ContextFinished,
    ErrorReported,
    VoiceSettings,
    encode_audio,
    encode_client_message,
    encode_error,
    encode_final,
    parse_client_message,
    parse_server_message,
)

AUDIO = bytes(range(256)) * 4


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_audio_message_with_normalized_alignment() -> None:
    message = orjson.dumps(
        {
            "audio": b64(AUDIO),
            "isFinal": False,
            "normalizedAlignment": {
                "chars": ["H", "i", " "],
                "charStartTimesMs": [0, 40, 80],
                "charsDurationsMs": [40, 40, 20],
            },
            "alignment": None,
            "contextId": "c1",
        }
    )
    (event,) = parse_server_message(message)
    assert event == AudioReceived(
        "c1", AUDIO, Alignment(("H", "i", " "), (0, 40, 80), (40, 40, 20))
    )


def test_alignment_falls_back_to_the_unnormalized_one_and_snake_case_times() -> None:
    message = {
        "audio": b64(b"\xff" * 8),
        "alignment": {"chars": ["a"], "char_start_times_ms": [1.6], "chars_durations_ms": [3]},
    }
    (event,) = parse_server_message(orjson.dumps(message))
    assert isinstance(event, AudioReceived)
    assert event.context_id is None  # the single-context route has no contextId
    assert event.alignment == Alignment(("a",), (2,), (3,))


@pytest.mark.parametrize("durations", ["charDurationsMs", "charsDurationsMs"])
def test_durations_in_the_sdks_spelling_and_the_older_one(durations: str) -> None:
    # The elevenlabs SDK (2.x) reads charDurationsMs; older docs and clients show charsDurationsMs.
    alignment = {"chars": ["o", "k"], "charStartTimesMs": [0, 30], durations: [30, 25]}
    message = orjson.dumps({"audio": b64(b"\xff" * 8), "normalizedAlignment": alignment})
    (event,) = parse_server_message(message)
    assert isinstance(event, AudioReceived)
    assert event.alignment == Alignment(("o", "k"), (0, 30), (30, 25))


def test_emitted_alignment_uses_the_sdks_spelling() -> None:
    body = orjson.loads(encode_audio("c1", b"\xff", Alignment(("a",), (0,), (5,))))
    assert body["normalizedAlignment"] == {"chars": ["a"], "charStartTimesMs": [0],
                                           "charDurationsMs": [5]}


@pytest.mark.parametrize("flag", ["isFinal", "is_final"])
def test_final_in_either_spelling(flag: str) -> None:
    assert parse_server_message(orjson.dumps({flag: True, "contextId": "c2"})) == (
        ContextFinished("c2"),
    )


def test_audio_and_final_in_one_message_keep_their_order() -> None:
    message = orjson.dumps({"audio": b64(b"\x7f\x7f"), "isFinal": True, "contextId": "x"})
    events = parse_server_message(message)
    assert [type(event) for event in events] == [AudioReceived, ContextFinished]


def test_empty_or_null_audio_gives_no_events() -> None:
    assert parse_server_message('{"audio": null, "contextId": "c"}') == ()
    assert parse_server_message('{"audio": "", "isFinal": false}') == ()


def test_error_report() -> None:
    detail = "Maximum simultaneous contexts exceeded (5)."
    text = encode_error(detail, "max_active_conversations", 1008)
    assert parse_server_message(text) == (ErrorReported(detail, "max_active_conversations", 1008),)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"{not json", "elevenlabs.not_json"),
        (b"[1, 2]", "elevenlabs.not_object"),
        (b'{"audio": "###"}', "elevenlabs.bad_audio"),
        (b'{"audio": 12}', "elevenlabs.bad_audio"),
        (b'{"audio": "AAAA", "contextId": 3}', "elevenlabs.bad_context_id"),
        (b'{"isFinal": "yes"}', "elevenlabs.bad_final"),
        (
            b'{"audio": "AAAA", "normalizedAlignment": {"chars": ["a", "b"],'
            b' "charStartTimesMs": [0], "charsDurationsMs": [1, 2]}}',
            "elevenlabs.bad_alignment",
        ),
        (
            b'{"audio": "AAAA", "normalizedAlignment": {"chars": ["a"],'
            b' "charStartTimesMs": ["0"], "charsDurationsMs": [1]}}',
            "elevenlabs.bad_alignment",
        ),
    ],
)
def test_malformed_server_messages(message: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_server_message(message)
    assert raised.value.code == code


def test_server_encoders_round_trip() -> None:
    alignment = Alignment(("o", "k"), (0, 50), (50, 60))
    assert parse_server_message(encode_audio("c9", AUDIO, alignment)) == (
        AudioReceived("c9", AUDIO, alignment),
    )
    assert parse_server_message(encode_final(None)) == (ContextFinished(None),)


def test_client_messages_have_the_documented_shapes() -> None:
    first = ClientMessage(
        text=" ",
        context_id="c1",
        voice_settings=VoiceSettings(stability=0.4, speed=1.1),
        chunk_length_schedule=(50, 120),
    )
    assert orjson.loads(encode_client_message(first)) == {
        "text": " ",
        "context_id": "c1",
        "voice_settings": {
            "stability": 0.4,
            "similarity_boost": 0.75,
            "style": 0.0,
            "use_speaker_boost": True,
            "speed": 1.1,
        },
        "generation_config": {"chunk_length_schedule": [50, 120]},
    }
    text = ClientMessage(text="Hello there. ", context_id="c1", flush=True)
    assert orjson.loads(encode_client_message(text)) == {
        "text": "Hello there. ",
        "context_id": "c1",
        "flush": True,
    }
    close = ClientMessage(context_id="c1", close_context=True)
    assert orjson.loads(encode_client_message(close)) == {"context_id": "c1", "close_context": True}
    assert orjson.loads(encode_client_message(ClientMessage(close_socket=True))) == {
        "close_socket": True
    }
    for message in (first, text, close):
        assert parse_client_message(encode_client_message(message)) == message


def test_client_parser_fills_voice_setting_defaults() -> None:
    parsed = parse_client_message('{"text": " ", "voice_settings": {"stability": 0.2}}')
    assert parsed.voice_settings == VoiceSettings(stability=0.2)
    assert parsed.chunk_length_schedule is None


@pytest.mark.parametrize(
    "message",
    [
        '{"text": 5}',
        '{"flush": "true"}',
        '{"context_id": 7}',
        '{"voice_settings": {"stability": "high"}}',
        '{"voice_settings": {"use_speaker_boost": 1}}',
        '{"generation_config": {"chunk_length_schedule": []}}',
        '{"generation_config": {"chunk_length_schedule": ["a"]}}',
        "null",
    ],
)
def test_malformed_client_messages(message: str) -> None:
    with pytest.raises(ProtocolError):
        parse_client_message(message)


def test_alignment_shift_and_text() -> None:
    alignment = Alignment(("a", "b"), (0, 10), (10, 15))
    assert alignment.shifted(250) == Alignment(("a", "b"), (250, 260), (10, 15))
    assert alignment.text == "ab"
