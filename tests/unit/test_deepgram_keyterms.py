"""Each question's vocabulary as Deepgram keyterms, replaced mid-stream with ``Configure``: the
choice of terms, the one-in-flight rule, the stream against the emulator over 127.0.0.1 (a
question's hints reach the socket, refusals leave the call going), and the messages checked
against deepgram-sdk 7.17's own ``ListenV1Configure*`` types (the asyncapi spec in specs/
predates the message)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import pytest_asyncio
from deepgram.listen.v1.types import (
    ListenV1Configure,
    ListenV1ConfigureFailure,
    ListenV1ConfigureSuccess,
)
from pydantic import SecretStr
from websockets.asyncio.client import connect

from slotline.agent.config_models import Secrets, Settings
from slotline.agent.server.metrics import Metrics
from slotline.agent.server.wiring import _stt
from slotline.providers.base import SpeechHints
from slotline.providers.emulators.deepgram import DeepgramEmulator, Faults
from slotline.providers.llm import rules
from slotline.providers.stt import deepgram_wire as wire
from slotline.providers.stt.deepgram import DeepgramSpeechToText
from slotline.providers.stt.deepgram_keyterms import (
    ALREADY_PENDING,
    LIMIT_EXCEEDED,
    MAX_TERMS,
    NOT_SUPPORTED,
    TOKEN_BUDGET,
    KeytermSync,
    estimated_tokens,
    keyterms_for,
    supports_keyterms,
)
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import TEXTS, caller_frames
from tests.until import until

KEY = "keyterm-test-key"
QUERY = "model=nova-3&encoding=mulaw&sample_rate=8000&channels=1"


# ---- which terms ------------------------------------------------------------------------------


def test_the_rare_words_of_a_question_are_its_keyterms() -> None:
    terms = keyterms_for(rules.hints("name"))
    assert "john smith" in terms and "sarah" in terms  # the names, without "my name is"/"it's"
    assert not any(term.split()[0] in ("my", "it's", "this") for term in terms)
    assert len(terms) == len(set(terms)) <= MAX_TERMS
    assert sum(map(estimated_tokens, terms)) <= TOKEN_BUDGET
    choices = keyterms_for(SpeechHints(phrases=("estate planning", "a will", "my tax return")))
    assert choices == ("estate planning", "a will", "tax return")
    for everyday in ("yes_no", "date", "time"):  # words Deepgram hears well: no keyterms
        assert keyterms_for(rules.hints(everyday)) == ()
    assert keyterms_for(SpeechHints()) == ()


def test_the_token_estimate_keeps_a_long_list_under_deepgrams_limit() -> None:
    many = tuple(f"surname{n} person{n}" for n in range(500))
    terms = keyterms_for(SpeechHints(phrases=many))
    assert 0 < len(terms) < MAX_TERMS and sum(map(estimated_tokens, terms)) <= TOKEN_BUDGET
    assert estimated_tokens("kowalczyk") == 4  # 1 + three pieces of up to four letters


def test_only_nova_3_models_take_keyterms() -> None:
    assert supports_keyterms("nova-3") and supports_keyterms("nova-3-medical")
    assert not supports_keyterms("nova-2") and not supports_keyterms("base")


# ---- one Configure at a time ------------------------------------------------------------------


def test_wants_made_while_a_configure_is_unanswered_coalesce_to_the_latest() -> None:
    sync = KeytermSync()
    assert sync.want(("john",)) and sync.due() == ("john",)
    sync.sent(("john",))
    assert not sync.want(("yes",)) and not sync.want(("tuesday",))  # unanswered: nothing goes
    sync.answered(ok=True)
    assert sync.applied == ("john",) and sync.due() == ("tuesday",)  # only the latest
    sync.sent(("tuesday",))
    sync.answered(ok=True)
    assert sync.applied == ("tuesday",) and sync.due() is None
    assert not sync.want(("tuesday",))  # already in effect


def test_a_refusal_by_model_or_limit_stops_keyterms_and_others_wait_for_new_terms() -> None:
    sync = KeytermSync()
    sync.want(("a",))
    sync.sent(("a",))
    sync.answered(ok=False, code="CONFIGURE_INTERNAL_ERROR")
    assert sync.due() is None and not sync.off  # not asked again as is ...
    assert sync.want(("b",))  # ... but new terms go
    sync.sent(("b",))
    sync.answered(ok=False, code=LIMIT_EXCEEDED)
    assert sync.off and sync.due() is None
    assert not sync.want(("c",))


def test_a_new_connection_is_sent_the_wanted_keyterms_again() -> None:
    sync = KeytermSync()
    sync.want(("john",))
    sync.sent(("john",))
    sync.answered(ok=True)
    sync.reconnected()
    assert sync.applied == () and sync.due() == ("john",)
    sync.answered(ok=True)  # an answer from the old socket settles nothing
    assert sync.applied == () and sync.due() == ("john",)


# ---- the wire, by the SDK's own types ---------------------------------------------------------


def test_configure_and_its_answers_are_the_sdks_messages() -> None:
    sent = orjson.loads(wire.encode_configure(("john", "estate planning")))
    assert ListenV1Configure.model_validate(sent).keyterms == ["john", "estate planning"]
    ok = {"type": "ConfigureSuccess", "request_id": "r1", "keyterms": ["john"]}
    ListenV1ConfigureSuccess.model_validate(ok)
    assert wire.parse_server_message(orjson.dumps(ok)) == wire.ConfigureSuccess("r1", ("john",))
    bad = {"type": "ConfigureFailure", "request_id": "r1", "code": NOT_SUPPORTED,
           "description": "no"}
    ListenV1ConfigureFailure.model_validate(bad)
    assert wire.parse_server_message(orjson.dumps(bad)) == wire.ConfigureFailure(
        "r1", NOT_SUPPORTED, "no")
    with pytest.raises(Exception, match="keyterms"):
        wire.parse_server_message(b'{"type": "ConfigureSuccess", "request_id": "r", '
                                  b'"keyterms": [1]}')


# ---- over a socket, against the emulator ------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def dg(recognizer: LocalSpeechToText) -> AsyncIterator[DeepgramEmulator]:
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer, record_messages=True) as emu:
        yield emu


@pytest.mark.asyncio(loop_scope="module")
async def test_each_question_loads_its_keyterms_and_the_turn_is_heard(dg: DeepgramEmulator) -> None:
    stream = DeepgramSttStreamFor(dg).open_stream(call_sid="CA1")
    stream.set_hints(rules.hints("yes_no"))  # before any audio: sent once the socket is up
    stream.set_hints(rules.hints("name"))
    for chunk in caller_frames("name_john"):
        stream.push_audio(chunk)
    await until(lambda: stream.keyterms == keyterms_for(rules.hints("name")))
    transcript = await stream.finalize()
    stream.set_hints(SpeechHints(phrases=("estate planning", "a will")))
    await until(lambda: stream.keyterms == ("estate planning", "a will"))
    await stream.aclose()
    assert transcript.text == TEXTS["name_john"]
    assert stream.configures_sent == dg.stats.configures == 2  # the yes/no set never went
    assert not dg.stats.configure_failures
    answers = [m for m in map(orjson.loads, dg.sent or ()) if m["type"] == "ConfigureSuccess"]
    for answer in answers:
        ListenV1ConfigureSuccess.model_validate(answer)


@pytest.mark.asyncio(loop_scope="module")
async def test_keyterms_go_again_after_a_drop(dg: DeepgramEmulator) -> None:
    dg.inject(Faults(drop_after_results=1))
    stream = DeepgramSttStreamFor(dg).open_stream(call_sid="CA2")
    stream.set_hints(rules.hints("name"))
    for chunk in caller_frames("name_john"):
        stream.push_audio(chunk)
    await until(lambda: stream.reconnects == 1)
    await until(lambda: stream.keyterms == keyterms_for(rules.hints("name")))
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.text == TEXTS["name_john"] and stream.configures_sent == 2


@pytest.mark.asyncio(loop_scope="module")
async def test_no_configure_on_a_model_without_keyterms(dg: DeepgramEmulator) -> None:
    stream = DeepgramSttStreamFor(dg, model="nova-2").open_stream(call_sid="CA3")
    stream.set_hints(rules.hints("name"))
    for chunk in caller_frames("yes"):
        stream.push_audio(chunk)
    transcript = await stream.finalize()
    await stream.aclose()
    assert transcript.is_final and stream.configures_sent == 0 and dg.stats.configures == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_the_emulator_answers_each_configure_as_deepgram_does(
    dg: DeepgramEmulator,
) -> None:
    url = f"{dg.url}/v1/listen?{QUERY}"
    async with connect(url, additional_headers={"Authorization": f"Token {KEY}"}) as ws:
        await ws.send(wire.encode_configure(("john",)))
        await ws.send(wire.encode_configure(("mary",)))  # before the first is answered
        answers = [orjson.loads(await ws.recv()) for _ in range(2)]
        await ws.send(wire.encode_configure(tuple(f"term{n}" for n in range(200))))
        answers.append(orjson.loads(await ws.recv()))
        await ws.send(wire.CLOSE_STREAM)
    assert [a.get("code") for a in answers] == [None, ALREADY_PENDING, LIMIT_EXCEEDED]
    assert answers[0]["keyterms"] == ["john"]
    for answer in answers:
        model = ListenV1ConfigureFailure if "code" in answer else ListenV1ConfigureSuccess
        model.model_validate(answer)
    async with connect(f"{dg.url}/v1/listen?{QUERY.replace('nova-3', 'nova-2')}",
                       additional_headers={"Authorization": f"Token {KEY}"}) as ws:
        await ws.send(wire.encode_configure(("john",)))
        refused = orjson.loads(await ws.recv())
        await ws.send(wire.CLOSE_STREAM)
    assert refused["code"] == NOT_SUPPORTED


@pytest.mark.asyncio(loop_scope="module")
async def test_a_refused_list_stops_keyterms_and_the_call_goes_on(
    recognizer: LocalSpeechToText,
) -> None:
    """A Deepgram that counts the names' tokens higher than our estimate refuses them."""
    async with DeepgramEmulator(api_key=KEY, recognizer=recognizer, keyterm_limit=20) as strict:
        stream = DeepgramSttStreamFor(strict).open_stream(call_sid="CA4")
        stream.set_hints(rules.hints("name"))
        for chunk in caller_frames("name_john"):
            stream.push_audio(chunk)
        transcript = await stream.finalize()
        stream.set_hints(rules.hints("yes_no"))  # nothing more is sent
        await stream.aclose()
    assert transcript.text == TEXTS["name_john"]
    assert strict.stats.configure_failures == {LIMIT_EXCEEDED: 1}
    assert stream.configures_sent == 1 and stream.keyterms == ()


def DeepgramSttStreamFor(dg: DeepgramEmulator, **kwargs: object) -> DeepgramSpeechToText:
    return DeepgramSpeechToText(KEY, base_url=dg.url, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("options", "on"), [({}, False), ({"keyterms": True}, True),
                                              ({"keyterms": "true"}, True),
                                              ({"keyterms": False}, False)])
async def test_the_setting_turns_keyterms_on_and_off(options: dict[str, bool], on: bool) -> None:
    settings = Settings.model_validate({"stt": {"provider": "deepgram", "options": options}})
    async with aiohttp.ClientSession() as http:
        stt, _ = _stt(settings, Secrets(deepgram_api_key=SecretStr(KEY)), Metrics(), http)
    assert isinstance(stt, DeepgramSpeechToText) and stt.keyterm_updates is on
