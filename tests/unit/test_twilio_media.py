"""The Twilio Media Streams codec, without sockets: fixtures shaped like Twilio's own examples."""

from __future__ import annotations

import base64
import gc
import json
import re
import tracemalloc
from collections.abc import Callable

import orjson
import pytest

from slotline.providers.errors import ProtocolError
from slotline.providers.telephony.twilio_media import (
    Clear,
    Connected,
    Dtmf,
    InboundStream,
    MarkEcho,
    Media,
    OutboundMark,
    OutboundMedia,
    Start,
    Stop,
    encode_clear,
    encode_connected,
    encode_dtmf,
    encode_inbound_media,
    encode_mark,
    encode_mark_echo,
    encode_media,
    encode_start,
    encode_stop,
    parse_inbound,
    parse_outbound,
)

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
ACCOUNT = "AC25e16e9a716a4a1786a7c83f58e30482"
CALL = "CA2f8b5c14c95e6f5e2fcb8f2b8c5d2f0a"
FRAME = bytes(range(160))
FRAME_B64 = base64.b64encode(FRAME).decode()


def _fill(documented: str) -> str:
    """A PROTOCOLS.md example with its elided SIDs and payload filled in."""
    for elided, value in (("MZ..", SID), ("AC..", ACCOUNT), ("CA..", CALL)):
        documented = documented.replace(f'"{elided}"', f'"{value}"')
    return documented.replace("<base64 mu-law>", FRAME_B64)


# The Twilio -> server examples of PROTOCOLS.md, verbatim but for the elisions.
CONNECTED = _fill('{"event":"connected","protocol":"Call","version":"1.0.0"}')
START = _fill(
    '{"event":"start","sequenceNumber":"1","streamSid":"MZ..","start":{"accountSid":"AC..",'
    '"streamSid":"MZ..","callSid":"CA..","tracks":["inbound"],"mediaFormat":{"encoding":'
    '"audio/x-mulaw","sampleRate":8000,"channels":1},'
    '"customParameters":{"flow":"demo_booking","token":"t-1"}}}'
)
MEDIA = _fill(
    '{"event":"media","sequenceNumber":"4","streamSid":"MZ..","media":{"track":"inbound",'
    '"chunk":"2","timestamp":"5","payload":"<base64 mu-law>"}}'
)
DTMF = _fill(
    '{"event":"dtmf","streamSid":"MZ..","sequenceNumber":"5",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}'
)
MARK = _fill('{"event":"mark","sequenceNumber":"6","streamSid":"MZ..","mark":{"name":"resp-42"}}')
STOP = _fill(
    '{"event":"stop","sequenceNumber":"7","streamSid":"MZ..",'
    '"stop":{"accountSid":"AC..","callSid":"CA.."}}'
)


def _codes(data: str | bytes) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_inbound(data)
    return caught.value.code


def _mutated(fixture: str, path: tuple[str, ...], value: object) -> str:
    """The fixture with one field replaced (``...`` deletes it)."""
    msg = json.loads(fixture)
    target = msg
    for key in path[:-1]:
        target = target[key]
    if value is Ellipsis:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(msg)


def test_parses_each_documented_twilio_message() -> None:
    assert parse_inbound(CONNECTED) == Connected(protocol="Call", version="1.0.0")
    start = parse_inbound(START)
    assert start == Start(
        sequence_number=1,
        stream_sid=SID,
        account_sid=ACCOUNT,
        call_sid=CALL,
        tracks=("inbound",),
        encoding="audio/x-mulaw",
        sample_rate_hz=8000,
        channels=1,
        custom_parameters={"flow": "demo_booking", "token": "t-1"},
    )
    assert parse_inbound(MEDIA) == Media(4, SID, "inbound", 2, 5, FRAME)
    assert parse_inbound(DTMF) == Dtmf(5, SID, "inbound_track", "1")
    assert parse_inbound(MARK) == MarkEcho(6, SID, "resp-42")
    assert parse_inbound(STOP) == Stop(7, SID, ACCOUNT, CALL)


def test_start_without_custom_parameters_and_parameters_are_read_only() -> None:
    start = parse_inbound(_mutated(START, ("start", "customParameters"), ...))
    assert isinstance(start, Start)
    assert dict(start.custom_parameters) == {}
    params = parse_inbound(START)
    assert isinstance(params, Start)
    with pytest.raises(TypeError):
        params.custom_parameters["flow"] = "other"  # type: ignore[index]


def test_bytes_input_that_is_utf8_json_is_accepted() -> None:
    assert parse_inbound(MEDIA.encode()) == parse_inbound(MEDIA)


def test_integers_are_tolerated_where_twilio_sends_strings() -> None:
    msg = parse_inbound(_mutated(MEDIA, ("sequenceNumber",), 4))
    assert isinstance(msg, Media) and msg.sequence_number == 4


def test_caller_side_encoders_round_trip_through_the_server_parser() -> None:
    assert parse_inbound(encode_connected()) == parse_inbound(CONNECTED)
    assert parse_inbound(encode_start(SID, ACCOUNT, CALL, custom_parameters={"a": "b"})) == Start(
        1, SID, ACCOUNT, CALL, ("inbound",), "audio/x-mulaw", 8000, 1, {"a": "b"}
    )
    assert parse_inbound(encode_inbound_media(SID, 4, 2, 5, FRAME)) == parse_inbound(MEDIA)
    assert orjson.loads(encode_inbound_media(SID, 4, 2, 5, FRAME)) == orjson.loads(MEDIA)
    assert parse_inbound(encode_dtmf(SID, 5, "1")) == parse_inbound(DTMF)
    assert parse_inbound(encode_mark_echo(SID, 6, "resp-42")) == parse_inbound(MARK)
    assert parse_inbound(encode_stop(SID, 7, ACCOUNT, CALL)) == parse_inbound(STOP)


def test_server_encoders_match_the_documented_shape_and_round_trip() -> None:
    audio = bytes(range(256)) * 3  # any length is allowed towards Twilio
    media = encode_media(SID, audio)
    assert orjson.loads(media) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(audio).decode()},
    }
    assert parse_outbound(media) == OutboundMedia(SID, audio)
    assert parse_outbound(encode_media(SID, b"")) == OutboundMedia(SID, b"")
    assert orjson.loads(encode_mark(SID, "resp-42")) == {
        "event": "mark",
        "streamSid": SID,
        "mark": {"name": "resp-42"},
    }
    assert parse_outbound(encode_mark(SID, "resp-42")) == OutboundMark(SID, "resp-42")
    assert orjson.loads(encode_clear(SID)) == {"event": "clear", "streamSid": SID}
    assert parse_outbound(encode_clear(SID)) == Clear(SID)


def test_encoders_escape_awkward_strings() -> None:
    sid = 'MZ"\\\n\u00e9'
    assert parse_outbound(encode_media(sid, b"x")) == OutboundMedia(sid, b"x")
    assert parse_outbound(encode_clear(sid)) == Clear(sid)
    assert parse_outbound(encode_mark(sid, 'a"b')) == OutboundMark(sid, 'a"b')
    assert parse_inbound(encode_inbound_media(sid, 1, 1, 0, FRAME)) == Media(
        1, sid, "inbound", 1, 0, FRAME
    )


MALFORMED: list[tuple[str | bytes, str]] = [
    ("", "invalid_json"),
    ("{", "invalid_json"),
    ('{"event":"media",}', "invalid_json"),
    ("\ud800", "invalid_json"),
    ("[]", "not_an_object"),
    ('"media"', "not_an_object"),
    ("null", "not_an_object"),
    ("42", "not_an_object"),
    ("{}", "missing_field"),
    ('{"event":7}', "bad_field_type"),
    ('{"event":null}', "bad_field_type"),
    ('{"event":"clear","streamSid":"MZ"}', "unknown_event"),  # server->Twilio only
    ('{"event":"Media"}', "unknown_event"),
    (b"\xff\xfe\x00binary", "binary_frame"),
    (b"\x80", "binary_frame"),
    (b"{not json", "invalid_json"),
    (_mutated(CONNECTED, ("version",), ...), "missing_field"),
    (_mutated(CONNECTED, ("protocol",), 1), "bad_field_type"),
    (_mutated(START, ("start",), ...), "missing_field"),
    (_mutated(START, ("start",), "x"), "bad_field_type"),
    (_mutated(START, ("streamSid",), ...), "missing_field"),
    (_mutated(START, ("sequenceNumber",), "one"), "bad_field_type"),
    (_mutated(START, ("start", "callSid"), ...), "missing_field"),
    (_mutated(START, ("start", "accountSid"), None), "bad_field_type"),
    (_mutated(START, ("start", "streamSid"), "MZother"), "stream_mismatch"),
    (_mutated(START, ("start", "tracks"), "inbound"), "bad_field_type"),
    (_mutated(START, ("start", "tracks"), [1]), "bad_field_type"),
    (_mutated(START, ("start", "mediaFormat"), ...), "missing_field"),
    (_mutated(START, ("start", "mediaFormat", "sampleRate"), 8000.0), "bad_field_type"),
    (_mutated(START, ("start", "mediaFormat", "sampleRate"), 16000), "unsupported_media_format"),
    (_mutated(START, ("start", "mediaFormat", "encoding"), "x"), "unsupported_media_format"),
    (_mutated(START, ("start", "mediaFormat", "channels"), 2), "unsupported_media_format"),
    (_mutated(START, ("start", "customParameters"), {"a": 1}), "bad_field_type"),
    (_mutated(START, ("start", "customParameters"), ["a"]), "bad_field_type"),
    (_mutated(MEDIA, ("media",), ...), "missing_field"),
    (_mutated(MEDIA, ("media",), [1, 2]), "bad_field_type"),
    (_mutated(MEDIA, ("streamSid",), ...), "missing_field"),
    (_mutated(MEDIA, ("streamSid",), 5), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), ...), "missing_field"),
    (_mutated(MEDIA, ("sequenceNumber",), ""), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), "-4"), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), " 4"), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), "4_0"), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), "\u0664"), "bad_field_type"),  # Arabic-Indic 4
    (_mutated(MEDIA, ("sequenceNumber",), True), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), "9" * 5000), "bad_field_type"),  # int()'s digit limit
    (_mutated(MEDIA, ("sequenceNumber",), -1), "bad_field_type"),
    (_mutated(MEDIA, ("sequenceNumber",), 4.0), "bad_field_type"),
    (_mutated(MEDIA, ("media", "track"), ...), "missing_field"),
    (_mutated(MEDIA, ("media", "chunk"), "2a"), "bad_field_type"),
    (_mutated(MEDIA, ("media", "timestamp"), ...), "missing_field"),
    (_mutated(MEDIA, ("media", "timestamp"), None), "bad_field_type"),
    (_mutated(MEDIA, ("media", "payload"), ...), "missing_field"),
    (_mutated(MEDIA, ("media", "payload"), 12), "bad_field_type"),
    (_mutated(MEDIA, ("media", "payload"), "!!!!"), "bad_base64"),
    (_mutated(MEDIA, ("media", "payload"), FRAME_B64[:-1]), "bad_base64"),
    (_mutated(MEDIA, ("media", "payload"), FRAME_B64 + "\n"), "bad_base64"),
    (_mutated(MEDIA, ("media", "payload"), "\u00e9\u00e9\u00e9\u00e9"), "bad_base64"),
    (_mutated(MEDIA, ("media", "payload"), FRAME_B64[:108]), "bad_payload_size"),  # 81 bytes
    (_mutated(MEDIA, ("media", "payload"), FRAME_B64[:-4] + "AAA="), "bad_payload_size"),
    (_mutated(MEDIA, ("media", "payload"), ""), "bad_payload_size"),
    (_mutated(DTMF, ("dtmf",), ...), "missing_field"),
    (_mutated(DTMF, ("dtmf", "digit"), 1), "bad_field_type"),
    (_mutated(DTMF, ("sequenceNumber",), ...), "missing_field"),
    (_mutated(MARK, ("mark",), ...), "missing_field"),
    (_mutated(MARK, ("mark", "name"), ...), "missing_field"),
    (_mutated(MARK, ("mark", "name"), ["x"]), "bad_field_type"),
    (_mutated(STOP, ("stop",), ...), "missing_field"),
    (_mutated(STOP, ("stop", "callSid"), ...), "missing_field"),
    (_mutated(STOP, ("stop", "accountSid"), 3), "bad_field_type"),
]


@pytest.mark.parametrize(("data", "code"), MALFORMED)
def test_each_malformed_message_raises_its_stable_code(data: str | bytes, code: str) -> None:
    assert _codes(data) == code


def test_truncations_and_byte_flips_never_escape_as_other_errors() -> None:
    for fixture in (CONNECTED, START, MEDIA, DTMF, MARK, STOP):
        raw = fixture.encode()
        variants = [raw[:cut] for cut in range(len(raw))]
        variants += [raw[:i] + bytes([raw[i] ^ 0x55]) + raw[i + 1 :] for i in range(len(raw))]
        for data in variants:
            for parse in (parse_inbound, parse_outbound):
                try:
                    parse(data)
                except ProtocolError as exc:
                    assert exc.code in {
                        "invalid_json", "not_an_object", "unknown_event", "missing_field",
                        "bad_field_type", "bad_base64", "bad_payload_size", "binary_frame",
                        "unsupported_media_format", "stream_mismatch", "bad_dtmf_digit",
                    }  # fmt: skip


OUTBOUND_MALFORMED: list[tuple[str, str]] = [
    ('{"event":"media","streamSid":"MZ","media":{}}', "missing_field"),
    ('{"event":"media","streamSid":"MZ","media":{"payload":"@@"}}', "bad_base64"),
    ('{"event":"media","media":{"payload":""}}', "missing_field"),
    ('{"event":"mark","streamSid":"MZ","mark":{"name":5}}', "bad_field_type"),
    ('{"event":"clear"}', "missing_field"),
    ('{"event":"start"}', "unknown_event"),
    ("[1]", "not_an_object"),
]


@pytest.mark.parametrize(("data", "code"), OUTBOUND_MALFORMED)
def test_outbound_parser_rejects_malformed_server_messages(data: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_outbound(data)
    assert caught.value.code == code


def _rejected(stream: InboundStream, data: str) -> str:
    with pytest.raises(ProtocolError) as caught:
        stream.receive(data)
    return caught.value.code


def test_stream_accepts_the_documented_order() -> None:
    stream = InboundStream()
    kinds = [type(stream.receive(m)) for m in (CONNECTED, START, MEDIA, DTMF, MARK, MEDIA, STOP)]
    assert kinds == [Connected, Start, Media, Dtmf, MarkEcho, Media, Stop]
    assert stream.start is not None and stream.start.call_sid == CALL
    assert stream.stopped


def test_stream_order_errors_drop_the_message_and_keep_the_stream_usable() -> None:
    stream = InboundStream()
    assert stream.receive(CONNECTED) == Connected("Call", "1.0.0")
    assert _rejected(stream, CONNECTED) == "out_of_order"
    for early in (MEDIA, DTMF, MARK):
        assert _rejected(stream, early) == "before_start"
    assert stream.start is None
    assert _rejected(stream, "{") == "invalid_json"
    assert isinstance(stream.receive(START), Start)
    assert _rejected(stream, START) == "duplicate_start"
    assert _rejected(stream, CONNECTED) == "out_of_order"
    other = "MZ00000000000000000000000000000000"
    for foreign in (MEDIA, DTMF, MARK, STOP):
        assert _rejected(stream, foreign.replace(SID, other)) == "stream_mismatch"
    assert _rejected(stream, _mutated(MEDIA, ("media", "payload"), "")) == "bad_payload_size"
    assert isinstance(stream.receive(MEDIA), Media)
    assert stream.start is not None and stream.start.stream_sid == SID
    assert isinstance(stream.receive(STOP), Stop)
    for late in (MEDIA, STOP, START, CONNECTED, "garbage"):
        assert _rejected(stream, late) == "after_stop"


def test_stream_tolerates_a_missing_connected_and_a_stop_before_start() -> None:
    stream = InboundStream()
    assert isinstance(stream.receive(START), Start)
    assert isinstance(stream.receive(MEDIA), Media)
    unstarted = InboundStream()
    assert isinstance(unstarted.receive(STOP), Stop)
    assert unstarted.stopped and unstarted.start is None


# Twilio's own documented example puts streamSid last; a started stream reads both layouts by
# slicing them, and must agree with the generic parser on every message, good or bad.
MEDIA_SID_LAST = _fill(
    '{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2",'
    '"timestamp":"5","payload":"<base64 mu-law>"},"streamSid":"MZ.."}'
)


def _verdict(receive: Callable[[str], object], data: str) -> object:
    try:
        return receive(data)
    except ProtocolError as exc:
        return exc.code


def _generic(data: str) -> object:
    """What a started stream must answer: the generic parser, then the stream's own check."""
    verdict = _verdict(parse_inbound, data)
    if isinstance(verdict, Media | Dtmf | MarkEcho | Stop) and verdict.stream_sid != SID:
        return "stream_mismatch"
    return "duplicate_start" if isinstance(verdict, Start) else verdict


def _started() -> InboundStream:
    stream = InboundStream()
    stream.receive(START)
    return stream


def _media_variants() -> list[str]:
    variants: list[str] = []
    for fixture in (MEDIA, MEDIA_SID_LAST):
        variants += [fixture[:cut] for cut in range(len(fixture))]
        variants += [fixture[:i] + chr(ord(c) ^ 0x55) + fixture[i + 1 :]
                     for i, c in enumerate(fixture)]
        variants += [
            fixture.replace('"4"', '"0004"'),  # leading zeros
            fixture.replace('"4"', '"' + "9" * 18 + '"'),
            fixture.replace('"4"', '"' + "9" * 19 + '"'),  # past _MAX_DIGITS
            fixture.replace('"4"', '"\u0664"'),  # an Arabic-Indic four: not ASCII
            fixture.replace('"4"', "4"),  # a JSON integer
            fixture.replace('"5"', '"-5"'),
            fixture.replace('"5"', '""'),
            fixture.replace('"inbound"', '"outbound"'),
            fixture.replace('"inbound"', '"inbound_track"'),
            fixture.replace('"inbound"', '"in\\u0062ound"'),  # an escape: the same string
            fixture.replace(FRAME_B64, FRAME_B64.replace("/", "\\/")),  # an escaped slash
            fixture.replace(FRAME_B64, FRAME_B64[:-4]),  # 157 bytes
            fixture.replace(FRAME_B64, FRAME_B64 + "AAAA"),  # 163 bytes
            fixture.replace(FRAME_B64, FRAME_B64[:-1] + "="),  # bad padding
            fixture.replace(FRAME_B64, FRAME_B64 + "="),
            fixture.replace(FRAME_B64, FRAME_B64[:8] + "\n" + FRAME_B64[8:]),
            fixture.replace(FRAME_B64, FRAME_B64 + "=="),  # padding past the end
            fixture.replace(FRAME_B64, FRAME_B64[:8] + '","x":"' + FRAME_B64[8:]),  # a field
            fixture.replace(FRAME_B64, FRAME_B64[:8] + '"}}' + FRAME_B64[8:]),  # two endings
            fixture.replace(FRAME_B64, FRAME_B64 + '"},"y":"'),  # more after the payload
            fixture.replace(FRAME_B64, FRAME_B64[:8] + "\\u0041" + FRAME_B64[9:]),  # an escape
            fixture.replace(",", ", "),  # spaces
            fixture.replace("{", "{ "),
            fixture + " ",
            fixture.replace('"event":"media"', '"event":"media","event":"stop"'),
            fixture.replace('"media":{', '"extra":1,"media":{'),
            fixture.replace(SID, "MZ00000000000000000000000000000000"),  # another stream
        ]
    return variants


def test_a_started_stream_reads_media_in_both_documented_layouts() -> None:
    stream = _started()
    assert stream.receive(MEDIA) == Media(4, SID, "inbound", 2, 5, FRAME)
    assert stream.receive(MEDIA_SID_LAST) == Media(4, SID, "inbound", 2, 5, FRAME)
    assert parse_inbound(MEDIA_SID_LAST) == parse_inbound(MEDIA)


def test_a_started_stream_answers_every_media_variant_as_the_generic_parser() -> None:
    for data in _media_variants():
        assert _verdict(_started().receive, data) == _generic(data), data


def test_the_servers_receive_gives_media_as_its_frame_and_the_rest_typed() -> None:
    stream = InboundStream()
    assert stream.receive_audio(CONNECTED) == Connected("Call", "1.0.0")
    assert isinstance(stream.receive_audio(START), Start)
    assert stream.receive_audio(MEDIA_SID_LAST, 0) == FRAME
    assert stream.last_timestamp_ms == 5
    later = MEDIA.replace('"timestamp":"5"', '"timestamp":"0065"')
    assert stream.receive_audio(later, 60) == FRAME and stream.last_timestamp_ms == 65
    assert stream.receive_audio(later.replace(",", ", "), 60) == FRAME  # the generic parser's
    assert _verdict(stream.receive_audio, MEDIA) == "timestamp_backwards"
    assert stream.last_timestamp_ms == 65
    assert stream.receive_audio(DTMF) == Dtmf(5, SID, "inbound_track", "1")
    assert isinstance(stream.receive_audio(STOP), Stop)
    assert _verdict(stream.receive_audio, MEDIA) == "after_stop"


def test_the_servers_receive_answers_every_media_variant_as_the_generic_parser() -> None:
    for data in _media_variants():
        expected = _generic(data)
        verdict = _verdict(_started().receive_audio, data)
        assert verdict == (expected.payload if isinstance(expected, Media) else expected), data


def _one_call(stream_sid: str) -> None:
    """A stream from start to stop, with media in both layouts, as one call sends it."""
    stream = InboundStream()
    stream.receive_audio(START.replace(SID, stream_sid))
    for i, fixture in enumerate((MEDIA, MEDIA_SID_LAST)):
        media = fixture.replace(SID, stream_sid).replace('"timestamp":"5"', f'"timestamp":"{i}"')
        assert stream.receive_audio(media) == FRAME
    stream.receive_audio(STOP.replace(SID, stream_sid))


def test_an_ended_stream_leaves_nothing_behind() -> None:
    # A process takes thousands of calls: what a finished stream keeps (a pattern per stream in
    # ``re``'s module cache was ~4.9 KB a call, up to 512 patterns) is what the soak sees grow.
    re.purge()  # from empty, whatever other tests compiled
    for i in range(5):
        _one_call(f"MZ{i:032x}")  # the parser's first-use allocations
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            _one_call(f"MZ{i + 1000:032x}")
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 200 * 100, f"{kept / 200:.0f} bytes kept per ended stream"


def test_a_stream_id_with_json_escapes_still_reads_its_media() -> None:
    odd_sid = 'MZ"odd\\sid/\u00e9'
    wire_sid = orjson.dumps(odd_sid).decode()[1:-1]  # as it is inside the JSON string
    stream = InboundStream()
    stream.receive_audio(START.replace(SID, wire_sid))
    assert stream.receive_audio(MEDIA.replace(SID, wire_sid)) == FRAME
    assert _verdict(stream.receive_audio, MEDIA) == "stream_mismatch"
