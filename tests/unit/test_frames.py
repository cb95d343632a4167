"""The per-frame path on recorded speech: the real WebRTC VAD and loudness rule, a recogniser
stand-in that records what the pipeline asks of it, and an end-of-turn model stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest

from slotline.agent.call.frames import MODEL_AUDIO_MS, FramePipeline
from slotline.agent.call.responder import Listen
from slotline.agent.call.turns import Paused, TurnConfig, TurnDetector, TurnEnded, TurnEvent
from slotline.agent.sim.caller import load_wav_ulaw
from slotline.audio.mulaw import encode_array, ulaw_to_pcm16
from slotline.audio.vad import WebRtcVad
from slotline.providers.base import (
    AudioChunk,
    Heard,
    SpeechEnded,
    SpeechHints,
    SttEvent,
    Transcript,
)

ASSETS = "agent/assets/caller"
FRAME = 160
SILENCE = b"\xff" * FRAME
CFG = TurnConfig(min_speech_ms=120, end_silence_ms=600, long_silence_ms=1200)


class PlainStream:
    """A recogniser plug-in written before ``pause()`` and ``events()``."""

    def __init__(self) -> None:
        self.pushed = 0
        self.hints: list[SpeechHints] = []

    def push_audio(self, chunk: AudioChunk) -> None:
        self.pushed += 1

    def set_hints(self, hints: SpeechHints) -> None:
        self.hints.append(hints)

    async def finalize(self) -> Transcript:
        return Transcript("", is_final=True)

    async def interim(self) -> AsyncIterator[Transcript]:
        return
        yield

    async def aclose(self) -> None:
        return None


class Stream(PlainStream):
    """A recogniser stand-in: counts the frames pushed and the pauses asked for, keeps hints,
    says what the test puts in ``said``."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses = 0
        self.said: asyncio.Queue[SttEvent | None] = asyncio.Queue()  # None: the stream ends

    def pause(self) -> None:
        self.pauses += 1

    def words_pending(self) -> bool:
        return False

    async def events(self) -> AsyncIterator[SttEvent]:
        while (event := await self.said.get()) is not None:
            yield event


class Model:
    """An end-of-turn model that says ``probability`` and keeps what it was given."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.heard: list[bytes] = []

    async def complete(self, pcm16_8k: bytes) -> float:
        self.heard.append(pcm16_8k)
        await asyncio.sleep(0)
        return self.probability


class BrokenModel:
    async def complete(self, pcm16_8k: bytes) -> float:
        raise RuntimeError("no model file")


def frames(*stems: str, silence_ms: int = 1500) -> list[bytes]:
    audio = b"".join(load_wav_ulaw(f"{ASSETS}/{stem}.wav") for stem in stems)
    audio = audio[: len(audio) - len(audio) % FRAME] + SILENCE * (silence_ms // 20)
    return [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]


def run(pipeline: FramePipeline, chunks: list[bytes]) -> list[TurnEvent]:
    events = []
    for i, chunk in enumerate(chunks):
        _, event = pipeline.process(chunk, i * 20)
        if event is not None:
            events.append(event)
    return events


def turn_end(events: list[TurnEvent]) -> TurnEnded:
    (ended,) = [e for e in events if isinstance(e, TurnEnded)]
    return ended


def test_the_turn_ends_counting_from_the_last_loud_frame() -> None:
    stream = Stream()
    pipeline = FramePipeline(WebRtcVad(2), stream, TurnDetector(CFG))
    ended = turn_end(run(pipeline, frames("day_tuesday")))
    assert stream.pushed == len(frames("day_tuesday"))
    # the VAD's hang-over (~100 ms of voiced frames after the words) did not delay the end
    assert ended.last_voiced_ms - ended.last_loud_ms >= 60
    assert ended.at_ms - (ended.last_loud_ms + 20) == CFG.end_silence_ms
    # the VAD alone (every voiced frame counted as the words) ends it later by the hang-over
    vad, turns = WebRtcVad(2), TurnDetector(CFG)
    by_vad = [turns.frame(vad.is_speech(ulaw_to_pcm16(c)), i * 20)
              for i, c in enumerate(frames("day_tuesday"))]
    ended_by_vad = turn_end([e for e in by_vad if e is not None])
    assert ended_by_vad.at_ms - ended.at_ms == ended.last_voiced_ms - ended.last_loud_ms


def test_each_utterance_is_loud_against_its_own_loudest_frame() -> None:
    pipeline = FramePipeline(WebRtcVad(2), Stream(), TurnDetector(CFG))
    first = turn_end(run(pipeline, frames("name_john")))
    quiet = [ulaw_to_pcm16(f) for f in frames("yes")]  # the second answer 30 dB quieter
    soft = [encode_array((np.frombuffer(p, "<i2") / 32).astype(np.int16)) for p in quiet]
    events = []
    for i, chunk in enumerate(soft):
        _, event = pipeline.process(chunk, 100_000 + i * 20)
        if event is not None:
            events.append(event)
    second = turn_end(events)
    assert first.last_loud_ms > 0 and second.last_loud_ms > 100_000
    assert second.last_voiced_ms - second.last_loud_ms < 200


@pytest.mark.parametrize("kind", ["name", None])  # None: no Listen yet, an open question
def test_a_pause_asks_the_recogniser_to_finish_once_whatever_the_question(
    kind: str | None,
) -> None:
    stream = Stream()
    pipeline = FramePipeline(WebRtcVad(2), stream, TurnDetector(CFG))
    if kind is not None:
        pipeline.listen(Listen(SpeechHints()).expecting(kind))
    events = run(pipeline, frames("name_john"))
    pauses = [e for e in events if isinstance(e, Paused)]
    assert len(pauses) >= 1 and stream.pauses == len(pauses)
    with_model = Stream()
    run(FramePipeline(WebRtcVad(2), with_model, TurnDetector(CFG), Model(0.0)),
        frames("name_john"))
    assert with_model.pauses == stream.pauses  # the model judges the same pauses


async def test_a_plug_in_that_cannot_pause_still_works() -> None:
    stream = PlainStream()
    pipeline = FramePipeline(WebRtcVad(2), stream, TurnDetector(CFG))
    watching = asyncio.create_task(pipeline.watch())  # its interims (none here) are its words
    events = run(pipeline, frames("yes"))
    assert any(isinstance(e, Paused) for e in events) and turn_end(events).reason == "silence"
    assert stream.pushed == len(frames("yes"))
    await asyncio.wait_for(watching, 5)  # its interims ended


def test_listen_sets_hints_patience_and_the_answer_it_waits_for() -> None:
    stream = Stream()
    turns = TurnDetector(CFG)
    pipeline = FramePipeline(WebRtcVad(2), stream, turns)
    hints = SpeechHints(phrases=("next tuesday",))
    pipeline.listen(Listen(hints).expecting("date"))
    assert stream.hints == [hints] and turns.patience == "normal"
    ended = None
    for i, chunk in enumerate(frames("day_tuesday")):
        _, event = pipeline.process(chunk, i * 20)
        if isinstance(event, Paused):  # the recogniser's answer to pause(): the words so far
            pipeline.heard("next tuesday", final=True)
        if isinstance(event, TurnEnded):
            ended = event
            break
    assert ended is not None and ended.reason == "complete_answer"
    # the words came at the pause, so the rule holds at the first frame of enough silence
    assert ended.at_ms - (ended.last_loud_ms + 20) == CFG.complete_silence_ms


def test_unfinished_words_make_the_wait_long() -> None:
    pipeline = FramePipeline(WebRtcVad(2), Stream(), TurnDetector(CFG))
    pipeline.listen(Listen(SpeechHints()).expecting("date"))
    ended = None
    for i, chunk in enumerate(frames("day_tuesday", silence_ms=2000)):
        _, event = pipeline.process(chunk, i * 20)
        if isinstance(event, Paused):
            pipeline.heard("next tuesday at", final=True)
        if isinstance(event, TurnEnded):
            ended = event
    assert ended is not None and ended.reason == "silence" and ended.patience == "long"
    assert ended.at_ms - (ended.last_loud_ms + 20) == CFG.long_silence_ms


async def test_the_end_of_turn_model_judges_the_turns_audio_at_a_pause() -> None:
    model = Model(0.9)
    pipeline = FramePipeline(WebRtcVad(2), Stream(), TurnDetector(CFG), model)
    pipeline.listen(Listen(SpeechHints()))  # an open question
    judging = asyncio.create_task(pipeline.watch())
    chunks = frames("yes", silence_ms=1000)
    ended = paused = None
    for i, chunk in enumerate(chunks):
        _, event = pipeline.process(chunk, i * 20)
        await asyncio.sleep(0)  # frames arrive from the socket: the loop runs between them
        if isinstance(event, Paused):
            paused = event
        if isinstance(event, TurnEnded):
            ended = event
            break
    judging.cancel()
    assert paused is not None and ended is not None and ended.reason == "model_end"
    assert ended.at_ms < paused.at_ms + CFG.end_silence_ms
    # the model heard the turn's audio as it was fed, from its first voiced frame to the pause
    (pcm,) = model.heard
    fed = b"".join(ulaw_to_pcm16(c) for c in chunks)
    assert pcm == fed[paused.first_voiced_ms // 20 * 320 : paused.at_ms // 20 * 320]


async def test_the_model_keeps_out_of_answers_the_words_can_judge() -> None:
    model = Model(0.9)
    pipeline = FramePipeline(WebRtcVad(2), Stream(), TurnDetector(CFG), model)
    pipeline.listen(Listen(SpeechHints()).expecting("date"))
    judging = asyncio.create_task(pipeline.watch())
    events = []
    for i, chunk in enumerate(frames("yes")):
        _, event = pipeline.process(chunk, i * 20)
        await asyncio.sleep(0)
        if event is not None:
            events.append(event)
    judging.cancel()
    assert model.heard == [] and turn_end(events).reason == "silence"


async def test_a_broken_model_leaves_the_turn_to_the_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = FramePipeline(WebRtcVad(2), Stream(), TurnDetector(CFG), BrokenModel())
    judging = asyncio.create_task(pipeline.watch())
    events = []
    for i, chunk in enumerate(frames("yes")):
        _, event = pipeline.process(chunk, i * 20)
        await asyncio.sleep(0)
        if event is not None:
            events.append(event)
    judging.cancel()
    assert turn_end(events).reason == "silence"
    assert "end-of-turn model failed" in caplog.text


async def test_the_model_sees_at_most_the_last_eight_seconds() -> None:
    model = Model(0.1)  # not done: the silence ends the turn
    pipeline = FramePipeline(WebRtcVad(2), Stream(), TurnDetector(CFG), model)
    judging = asyncio.create_task(pipeline.watch())
    samples = np.random.default_rng(7).normal(0, 6000, 9_000 * 8)  # 9 s voiced, no pause
    noise = encode_array(samples.clip(-32000, 32000).astype(np.int16))
    chunks = [noise[i : i + FRAME] for i in range(0, len(noise), FRAME)] + [SILENCE] * 40
    fed = b""
    for i, chunk in enumerate(chunks):
        _, event = pipeline.process(chunk, i * 20)
        fed += ulaw_to_pcm16(chunk)
        if isinstance(event, Paused):
            break
    for _ in range(5):
        await asyncio.sleep(0)
    judging.cancel()
    (pcm,) = model.heard
    assert len(pcm) == MODEL_AUDIO_MS * 16 and fed.endswith(pcm)



async def feed_live(
    pipeline: FramePipeline, stream: Stream, chunks: list[bytes], on_pause: list[SttEvent]
) -> list[TurnEvent]:
    """Frames as a call gets them (the loop runs between them) until the turn ends; at the
    first pause the recogniser says ``on_pause``."""
    events = []
    for i, chunk in enumerate(chunks):
        _, event = pipeline.process(chunk, i * 20)
        if isinstance(event, Paused) and on_pause:
            for said in on_pause:
                stream.said.put_nowait(said)
            on_pause = []
        await asyncio.sleep(0)
        if event is not None:
            events.append(event)
        if isinstance(event, TurnEnded):
            break
    return events


async def test_watch_judges_the_recognisers_words_for_the_expected_answer() -> None:
    stream = Stream()
    pipeline = FramePipeline(WebRtcVad(2), stream, TurnDetector(CFG))
    pipeline.listen(Listen(SpeechHints()).expecting("date"))
    watching = asyncio.create_task(pipeline.watch())
    events = await feed_live(pipeline, stream, frames("day_tuesday"),
                             [Heard("next", final=False), Heard("next tuesday", final=True)])
    assert stream.pauses == 1 and turn_end(events).reason == "complete_answer"
    stream.said.put_nowait(None)  # the stream closes: watch returns
    await asyncio.wait_for(watching, 5)


async def test_watch_passes_the_vendors_end_of_speech_to_the_detector() -> None:
    stream = Stream()
    pipeline = FramePipeline(WebRtcVad(2), stream, TurnDetector(CFG), Model(0.0))
    watching = asyncio.create_task(pipeline.watch())
    events = await feed_live(pipeline, stream, frames("yes"), [SpeechEnded()])
    ended = turn_end(events)
    assert ended.reason == "stt_final"
    # signalled at the pause, before the floor: the turn ends as the floor is reached
    assert ended.at_ms - (ended.last_loud_ms + 20) == CFG.stt_final_min_silence_ms
    stream.said.put_nowait(None)
    await asyncio.wait_for(watching, 5)  # and stops judging pauses with the model


@pytest.mark.parametrize(("over_agent", "words", "kind", "reason", "silence_ms"), [
    (True, "uh huh", "date", "complete_answer", CFG.complete_silence_ms),  # resumed soon
    # what a recogniser made of "mm hmm": nothing the question can use, resumed as soon
    (True, "m m a trim", "date", "complete_answer", CFG.complete_silence_ms),
    # no words over the agent (a cough, or words the recogniser missed): resumed as soon
    (True, "", "date", "complete_answer", CFG.complete_silence_ms),
    # no words at the question, not over the agent: not answered yet, the long silence
    (False, "", "date", "silence", CFG.unanswered_silence_ms),
    # no words at an open question: no answer to end the turn early on, the usual silence
    (False, "", "", "silence", CFG.end_silence_ms),
    # a surname alone at the name question: half an answer, the rest may follow
    (True, "lopez", "name", "silence", CFG.partial_silence_ms),
    # "uh huh" to "what day?" not over the agent: no answer, the caller may go on: the
    # question's silence
    (False, "uh huh", "date", "silence", CFG.end_silence_ms),
])
def test_a_backchannel_over_the_agent_is_a_whole_turn(
    over_agent: bool, words: str, kind: str, reason: str, silence_ms: int
) -> None:
    turns = TurnDetector(replace(CFG, bargein_min_speech_ms=80))
    pipeline = FramePipeline(WebRtcVad(2), Stream(), turns)
    pipeline.listen(Listen(SpeechHints()).expecting(kind))
    turns.agent_speaking = over_agent
    ended = None
    for i, chunk in enumerate(frames("backchannel")):
        _, event = pipeline.process(chunk, i * 20)
        if isinstance(event, Paused):  # the recogniser's answer to pause()
            pipeline.heard(words, final=True)
        if isinstance(event, TurnEnded):
            ended = event
            break
    assert ended is not None and ended.reason == reason
    assert ended.at_ms - (ended.last_loud_ms + 20) == silence_ms
