"""LocalSpeechToText: real pocketsphinx decoding of the committed caller recordings.

Every recording goes through the telephone path (mu-law 8 kHz, 20 ms frames, an energy VAD
flag) into one shared provider (one worker process for the module). WER bounds were measured
on these files (bench/stt_local_cost.py) and carry a margin.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from importlib import resources

import numpy as np
import pytest
import pytest_asyncio

from slotline.audio.mulaw import decode_array, pcm16_to_ulaw
from slotline.providers.base import AudioChunk, Heard, SpeechHints, SttEvent, Transcript
from slotline.providers.errors import ProviderTimeout
from slotline.providers.llm.rules.vocab import OPT_OUT_HINTS
from slotline.providers.stt import _sphinx_wire as wire
from slotline.providers.stt._sphinx_worker import normalize_phrase
from slotline.providers.stt.local import LocalSpeechToText, LocalSttStream

SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")  # the tests sharing the `stt` fixture

FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES  # mu-law zero
DOMAIN_LM_WER_MAX = 0.15  # measured 0.04-0.05 without hints
OUT_OF_HINT_WER_MAX = 0.15  # measured 0.04-0.05 with another question's hints

# What the agent expects after each question: (recordings that answer it, hint phrases).
# Hints are written the way a flow author writes them; the recogniser spells them out.
QUESTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "intent": (
        ("book", "cancel", "reschedule"),
        (
            "I would like to book an appointment", "I'd like to make an appointment",
            "Actually I want to cancel my appointment", "I want to cancel my appointment",
            "Can I move my appointment?", "I'd like to reschedule my appointment",
        ),
    ),
    "name": (
        ("name_john", "name_jane"),
        ("My name is John Smith", "It's Jane Doe", "My name is Jane Doe", "This is John Smith"),
    ),
    "date": (
        ("day_tuesday", "date_dec_first"),
        ("next Tuesday", "next Monday", "this Friday", "December 1st", "December 2nd", "tomorrow"),
    ),
    "time": (
        ("time_3pm", "time_1030", "afternoon"),
        ("3 pm", "2 pm", "10:30 in the morning", "10 am", "in the afternoon please",
         "in the morning please"),
    ),
    "email": (
        ("email_john",),
        ("john.smith@example.com", "jane.doe@example.com", "john smith at gmail dot com"),
    ),
    "phone": (("phone",), ("555 123 4567", "555 987 6543")),
    "confirm": (("yes", "yes_works", "no"), ("yes", "yes that works", "no", "no thanks", "yeah")),
    "other": (
        ("interrupt", "goodbye", "backchannel", "urgent"),
        ("wait sorry hold on", "thank you goodbye", "uh huh", "goodbye", "this is urgent"),
    ),
    # the example flows' questions
    "choice": (
        ("haircut", "estate", "team_small", "by_phone", "first_one", "cancel_short"),
        ("a haircut please", "coloring", "estate planning", "taxes", "a small team", "just me",
         "by phone number", "booking reference", "the first one please", "the second one",
         "i want to cancel", "i want to reschedule"),
    ),
    # a do-not-call request: every question listens for these
    "opt_out": (("opt_out", "dont_call"), OPT_OUT_HINTS),
}
# Free-text answers (a company name, the caller's problem): no hints can know them, so the
# transcripts are whatever the general-purpose fallback makes of them; not scored here.
FREE_TEXT = ("company_acme", "issue_sync")


def utterance_texts() -> dict[str, str]:
    table = resources.files("slotline.agent.assets.caller").joinpath("utterances.txt").read_text()
    return dict(line.split("\t", 1) for line in table.splitlines() if line.strip())


TEXTS = utterance_texts()


def caller_frames(stem: str, *, lead_ms: int = 400, tail_ms: int = 800) -> list[AudioChunk]:
    """The recording as the server sees it: mu-law frames, voiced where the energy is speech."""
    with resources.as_file(resources.files("slotline.agent.assets.caller") / f"{stem}.wav") as path:
        with wave.open(str(path)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            ulaw = pcm16_to_ulaw(wav.readframes(wav.getnframes()))
    ulaw = SILENCE * (lead_ms // 20) + ulaw
    ulaw += b"\xff" * (-len(ulaw) % FRAME_BYTES) + SILENCE * (tail_ms // 20)
    chunks = []
    for start in range(0, len(ulaw), FRAME_BYTES):
        frame = ulaw[start : start + FRAME_BYTES]
        samples = decode_array(frame)
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        chunks.append(AudioChunk(frame, samples.tobytes(), voiced=rms > 200.0))
    return chunks


def word_errors(reference: str, hypothesis: str) -> int:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            previous, row[j] = row[j], min(
                row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word)
            )
    return row[-1]


async def say(stream: LocalSttStream, stem: str, hints: SpeechHints | None = None) -> Transcript:
    if hints is not None:
        stream.set_hints(hints)
    for chunk in caller_frames(stem):
        stream.push_audio(chunk)
    return await stream.finalize()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stt() -> AsyncIterator[LocalSpeechToText]:
    async with LocalSpeechToText() as provider:
        yield provider


@SHARED_LOOP
async def test_every_recording_is_exact_with_its_questions_hints(stt: LocalSpeechToText) -> None:
    stream = stt.open_stream(call_sid="CAgrammar")
    for stems, phrases in QUESTIONS.values():
        for stem in stems:
            transcript = await say(stream, stem, SpeechHints(phrases=phrases))
            assert transcript == Transcript(TEXTS[stem], True, transcript.confidence), stem
            assert transcript.confidence is not None and 0.0 <= transcript.confidence <= 1.0
    scored = [stem for stems, _ in QUESTIONS.values() for stem in stems]
    assert sorted(scored + list(FREE_TEXT)) == sorted(TEXTS)
    await stream.aclose()


@SHARED_LOOP
async def test_domain_language_model_without_hints(stt: LocalSpeechToText) -> None:
    stream = stt.open_stream(call_sid="CAdomain")
    errors = words = 0
    for stem, text in TEXTS.items():
        if stem in FREE_TEXT:
            continue
        transcript = await say(stream, stem)
        errors += word_errors(text, transcript.text)
        words += len(text.split())
    print(f"domain LM WER {errors / words:.3f} over {words} words")
    assert errors / words < DOMAIN_LM_WER_MAX
    await stream.aclose()


@SHARED_LOOP
async def test_speech_outside_the_hints_falls_back_to_the_language_model(
    stt: LocalSpeechToText,
) -> None:
    stream = stt.open_stream(call_sid="CAfallback")
    name_hints = SpeechHints(phrases=QUESTIONS["name"][1])
    transcript = await say(stream, "cancel", name_hints)
    assert transcript.text == TEXTS["cancel"]
    # every recording against the hints of the next question that it does not answer
    errors = words = 0
    names = list(QUESTIONS)
    scored = [(stem, text) for stem, text in TEXTS.items() if stem not in FREE_TEXT]
    for index, (stem, text) in enumerate(scored):
        candidates = names[index % len(names) :] + names[: index % len(names)]
        question = next(q for q in candidates if stem not in QUESTIONS[q][0])
        phrases = QUESTIONS[question][1]
        transcript = await say(stream, stem, SpeechHints(phrases=phrases))
        errors += word_errors(text, transcript.text)
        words += len(text.split())
        forced = {" ".join(normalize_phrase(p)) for p in phrases} - {text}
        assert transcript.text not in forced, (stem, question)
    print(f"out-of-hint WER {errors / words:.3f} over {words} words")
    assert errors / words < OUT_OF_HINT_WER_MAX
    await stream.aclose()


@SHARED_LOOP
async def test_jsgf_grammar_hint(stt: LocalSpeechToText) -> None:
    grammar = (
        "#JSGF V1.0;\ngrammar when;\n"
        "public <when> = <day> | <time>;\n"
        "<day> = (next | this) (monday | tuesday | friday);\n"
        "<time> = (two | three | four) p m;\n"
    )
    stream = stt.open_stream(call_sid="CAjsgf")
    assert (await say(stream, "day_tuesday", SpeechHints(grammar=grammar))).text == "next tuesday"
    assert (await say(stream, "time_3pm", SpeechHints(grammar=grammar))).text == "three p m"
    await stream.aclose()


@SHARED_LOOP
async def test_unusable_hints_do_not_break_recognition(stt: LocalSpeechToText) -> None:
    stream = stt.open_stream(call_sid="CAoov")
    oov = SpeechHints(phrases=("zqxvbw", "my name is john smith", "flurbotzky plimvane"))
    assert (await say(stream, "name_john", oov)).text == "my name is john smith"
    nothing_known = SpeechHints(phrases=("zqxvbw plimvane",))
    assert (await say(stream, "day_tuesday", nothing_known)).text == "next tuesday"
    bad_grammar = SpeechHints(  # the unknown word is left out, the rest still works
        grammar="#JSGF V1.0;\ngrammar g;\npublic <g> = next ( tuesday | zqxvbw );\n"
    )
    assert (await say(stream, "day_tuesday", bad_grammar)).text == "next tuesday"
    broken = SpeechHints(grammar="this is not jsgf")
    assert (await say(stream, "time_3pm", broken)).text == "three p m"
    await stream.aclose()


@SHARED_LOOP
async def test_no_voiced_frame_finalizes_to_empty_text_without_decoding(
    stt: LocalSpeechToText,
) -> None:
    stream = stt.open_stream(call_sid="CAquiet")
    before = stt.decodes_requested
    loud_but_unvoiced = [AudioChunk(c.ulaw, c.pcm16, False) for c in caller_frames("phone")]
    for chunk in loud_but_unvoiced:
        stream.push_audio(chunk)
    assert await stream.finalize() == Transcript("", True, None)
    assert await stream.finalize() == Transcript("", True, None)
    assert stt.decodes_requested == before
    await stream.aclose()


@SHARED_LOOP
async def test_preroll_keeps_the_onset_the_vad_missed(stt: LocalSpeechToText) -> None:
    stream = stt.open_stream(call_sid="CApreroll")
    chunks = caller_frames("name_john")
    first_voiced = next(i for i, c in enumerate(chunks) if c.voiced)
    late = first_voiced + 10  # the VAD wakes up 200 ms into "my name ..."
    for i, chunk in enumerate(chunks):
        stream.push_audio(AudioChunk(chunk.ulaw, chunk.pcm16, chunk.voiced and i >= late))
    hints = SpeechHints(phrases=QUESTIONS["name"][1])
    stream.set_hints(hints)
    assert (await stream.finalize()).text == "my name is john smith"
    await stream.aclose()


@SHARED_LOOP
async def test_speech_after_a_pause_joins_the_same_turn(stt: LocalSpeechToText) -> None:
    """A pause long enough to start a speculative decode, then more speech: the final
    transcript covers both parts, so the speculation was dropped."""
    stream = stt.open_stream(call_sid="CApause")
    before = stt.decodes_requested
    for chunk in caller_frames("day_tuesday", tail_ms=400):  # > speculate_after_ms of silence
        stream.push_audio(chunk)
    await asyncio.sleep(0)
    assert stt.decodes_requested == before + 1  # the speculation went out
    for chunk in caller_frames("time_3pm", lead_ms=0):
        stream.push_audio(chunk)
    transcript = await stream.finalize()
    assert word_errors("next tuesday three p m", transcript.text) <= 1, transcript
    await stream.aclose()


@SHARED_LOOP
async def test_a_pauses_decode_is_published_as_settled_words_and_is_the_final(
    stt: LocalSpeechToText,
) -> None:
    """The speculative decode at a pause is the turn's words so far (``Heard(final=True)``),
    so the turn detector can end a whole answer early; ``finalize`` returns those words
    without a second decode. Speech resuming before it is back publishes nothing; a pause
    with no words (a tone) publishes no words: the caller has not answered yet."""
    stream = stt.open_stream(call_sid="CAheard")
    stream.set_hints(SpeechHints(phrases=QUESTIONS["date"][1]))
    events: asyncio.Queue[SttEvent] = asyncio.Queue()

    async def follow() -> None:
        async for event in stream.events():
            events.put_nowait(event)

    listener = asyncio.create_task(follow())
    await asyncio.sleep(0)
    before = stt.decodes_requested
    assert not stream.words_pending()
    for chunk in caller_frames("day_tuesday", tail_ms=400):  # > speculate_after_ms of silence
        stream.push_audio(chunk)
    assert stream.words_pending()  # the pause's decode is on its way
    heard = await asyncio.wait_for(events.get(), timeout=30)
    assert heard == Heard(TEXTS["day_tuesday"], final=True)
    assert not stream.words_pending()
    assert (await stream.finalize()).text == TEXTS["day_tuesday"]
    assert stt.decodes_requested == before + 1  # the final is the pause's decode

    # the caller goes on at once: that pause's decode is stale, its words never published
    for chunk in caller_frames("day_tuesday", tail_ms=400):
        stream.push_audio(chunk)
    for chunk in caller_frames("time_3pm", lead_ms=0, tail_ms=0):
        stream.push_audio(chunk)
    await asyncio.sleep(0.5)
    assert events.empty()
    await stream.finalize()

    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(400 * 8) / 8000)).astype(np.int16)
    frames = [AudioChunk(pcm16_to_ulaw(tone[i : i + 160].tobytes()), tone[i : i + 160].tobytes(),
                         True) for i in range(0, len(tone), 160)]
    for chunk in [*frames, *caller_frames("day_tuesday", lead_ms=0)[-20:]]:
        stream.push_audio(chunk)
    assert await asyncio.wait_for(events.get(), timeout=30) == Heard("", final=True)
    assert not stream.words_pending()
    await stream.aclose()
    await listener


@SHARED_LOOP
async def test_concurrent_streams_and_interim_finals(stt: LocalSpeechToText) -> None:
    streams = [stt.open_stream(call_sid=f"CA{i}") for i in range(3)]
    seen: list[Transcript] = []

    async def listen() -> None:
        async for transcript in streams[0].interim():
            seen.append(transcript)

    async with asyncio.TaskGroup() as group:
        group.create_task(listen(), name="interim-listener")
        await asyncio.sleep(0)
        results = await asyncio.gather(
            say(streams[0], "goodbye", SpeechHints(phrases=QUESTIONS["other"][1])),
            say(streams[1], "email_john", SpeechHints(phrases=QUESTIONS["email"][1])),
            say(streams[2], "phone", SpeechHints(phrases=QUESTIONS["phone"][1])),
        )
        await streams[0].aclose()
    assert [r.text for r in results] == [TEXTS["goodbye"], TEXTS["email_john"], TEXTS["phone"]]
    assert seen == [results[0]]
    for stream in streams[1:]:
        await stream.aclose()


async def test_decoding_without_speculation() -> None:
    async with LocalSpeechToText(speculate_after_ms=None) as provider:
        stream = provider.open_stream(call_sid="CAnospec")
        for chunk in caller_frames("reschedule"):
            stream.push_audio(chunk)
        assert provider.decodes_requested == 0
        assert (await stream.finalize()).text == TEXTS["reschedule"]
        assert provider.decodes_requested == 1
        await stream.aclose()


async def test_a_stuck_worker_is_killed_and_replaced() -> None:
    marathon = b"".join(c.pcm16 for stem in TEXTS for c in caller_frames(stem)) * 6  # ~5 min
    async with LocalSpeechToText(request_timeout_s=2.0) as provider:
        with pytest.raises(ProviderTimeout):
            await provider.decode(marathon, SpeechHints())
        stream = provider.open_stream(call_sid="CAafter")
        assert (await say(stream, "goodbye")).text == TEXTS["goodbye"]
        await stream.aclose()


def test_hint_text_is_spelled_out_as_spoken() -> None:
    assert normalize_phrase("3pm") == ["three", "p", "m"]
    assert normalize_phrase("10:30 in the Morning") == "ten thirty in the morning".split()
    assert normalize_phrase("It's Jane Doe!") == ["it's", "jane", "doe"]
    assert normalize_phrase("John.Smith@example.com.") == (
        "john dot smith at example dot com".split()
    )
    assert normalize_phrase("December 1st, the 22nd") == "december first the twenty second".split()
    assert normalize_phrase("555 123 4567") == (
        "five five five one two three four five six seven".split()
    )
    assert normalize_phrase("at 10:05 a.m.") == "at ten o five a m".split()


def test_wire_frames_round_trip() -> None:
    messages: list[wire.Message] = [
        wire.DecodeRequest(7, b"\x01\x02" * 80, ("yes", "no thanks"), None),
        wire.DecodeRequest(8, b"", (), "#JSGF V1.0; grammar g; public <g> = yes;"),
        wire.DecodeRequest(10, b"\x01\x02", ("yes",), None, consent=True),
        wire.DecodeResult(7, "no thanks", 0.5, "grammar", 12.5),
        wire.DecodeResult(9, "", None, "none", 1.0),
        wire.DecodeFailed(8, "ValueError: nope"),
        wire.WorkerReady(150.0),
    ]
    for message in messages:
        frame = wire.encode(message)
        json_length, payload_length = wire.parse_header(frame[: wire.HEADER.size])
        body = frame[wire.HEADER.size : wire.HEADER.size + json_length]
        payload = frame[wire.HEADER.size + json_length :]
        assert len(payload) == payload_length
        assert wire.decode(body, payload) == message


@pytest.mark.parametrize(
    ("body", "payload"),
    [(b"not json", b""), (b'{"t": "shout"}', b""), (b'{"t": "result", "id": 1}', b""),
     (b'{"t":"result","id":1,"text":"","confidence":null,"source":"x","decode_ms":1}', b"")],
)
def test_wire_rejects_malformed_frames(body: bytes, payload: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(body, payload)


def test_wire_rejects_oversized_frames() -> None:
    with pytest.raises(wire.WireError):
        wire.parse_header(wire.HEADER.pack(1 << 30, 0))
    with pytest.raises(wire.WireError):
        wire.parse_header(b"\x00" * 3)


def test_fillers_are_left_out_of_transcripts() -> None:
    from slotline.providers.stt.local import strip_fillers

    assert strip_fillers("uh next tuesday") == "next tuesday"
    assert strip_fillers("um uh") == ""
    assert strip_fillers("three p m") == "three p m"
    assert strip_fillers("uh huh") == "uh huh"  # a backchannel is kept whole


def test_grammar_words_outside_the_dictionary_are_silenced_not_fatal() -> None:
    from slotline.providers.stt._sphinx_worker import _silence_words

    grammar = "#JSGF V1.0;\ngrammar choice;\npublic <choice> = ( haircut | colouring | cut );\n"
    silenced = _silence_words(grammar, {"colouring", "choice"})
    assert silenced == (
        "#JSGF V1.0;\ngrammar choice;\npublic <choice> = ( haircut | <NULL> | cut );\n"
    )
