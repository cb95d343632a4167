"""The Deepgram emulator's segmenter, sans-I/O: when interims and finals are cut. Interims
follow Deepgram's documented cadence (cumulative, about one a second of audio) and come
early at a pause, so the interim transcript is not a second behind the caller."""

from __future__ import annotations

from slotline.audio.framing import FRAME_MS
from slotline.providers.emulators.deepgram_query import ListenParams
from slotline.providers.emulators.deepgram_segmenter import (
    GapElapsed,
    Segmenter,
    SegmentEvent,
    Span,
    SpeechBegan,
)

FRAME = b"\x00\x00" * 160


def params(*, interim_results: bool = True, endpointing_ms: int | None = 300) -> ListenParams:
    return ListenParams(model="nova-3", interim_results=interim_results,
                        endpointing_ms=endpointing_ms, utterance_end_ms=1000, vad_events=True)


def run(segmenter: Segmenter, pattern: list[tuple[bool, int]]) -> list[tuple[int, SegmentEvent]]:
    """Push (voiced, ms) runs of frames; every event with the audio time it came at."""
    out = []
    for voiced, ms in pattern:
        for _ in range(ms // FRAME_MS):
            out += [(segmenter.now_ms, event) for event in segmenter.push(FRAME, voiced)]
    return out


def spans(events: list[tuple[int, SegmentEvent]]) -> list[tuple[int, Span]]:
    return [(at, event) for at, event in events if isinstance(event, Span)]


def test_interims_come_about_once_a_second_of_speech_and_are_cumulative() -> None:
    events = run(Segmenter(params(), interim_every_ms=1000), [(False, 400), (True, 3500)])
    assert [type(e) for _, e in events] == [SpeechBegan, Span, Span, Span]
    interims = spans(events)
    # speech began at 400 ms; the onset is decided two frames later, the clock starts there
    assert [at for at, _ in interims] == [1440, 2440, 3440]
    assert {span.start_ms for _, span in interims} == {0}  # each covers the segment so far
    assert all(not span.is_final and not span.at_pause for _, span in interims)


def test_a_pause_gets_an_interim_at_once_then_the_endpoint_final() -> None:
    segmenter = Segmenter(params(), interim_every_ms=1000, interim_pause_ms=100)
    events = spans(run(segmenter, [(False, 400), (True, 600), (False, 400)]))
    (pause_at, pause), (final_at, final) = events
    assert pause_at == 1000 + 100 and pause.at_pause and not pause.is_final
    assert pause.pcm16 is not None and pause.speech_end_ms == 1000
    assert final_at == 1000 + 300 and final.is_final and final.speech_final


def test_one_pause_interim_per_pause_and_a_new_one_after_more_speech() -> None:
    segmenter = Segmenter(params(endpointing_ms=None), interim_every_ms=1000,
                          interim_pause_ms=100)
    events = spans(run(segmenter, [(True, 400), (False, 800), (True, 200), (False, 200)]))
    assert [(at, span.at_pause) for at, span in events] == [(500, True), (1500, True)]


def test_pause_interim_can_be_turned_off() -> None:
    segmenter = Segmenter(params(), interim_every_ms=1000, interim_pause_ms=None)
    events = spans(run(segmenter, [(False, 400), (True, 600), (False, 400)]))
    assert [(span.is_final, span.speech_final) for _, span in events] == [(True, True)]


def test_no_interims_without_interim_results() -> None:
    segmenter = Segmenter(params(interim_results=False), interim_every_ms=1000,
                          interim_pause_ms=100)
    events = run(segmenter, [(False, 400), (True, 2500), (False, 400)])
    assert [(span.is_final, span.speech_final) for _, span in spans(events)] == [(True, True)]
    assert not any(isinstance(event, GapElapsed) for _, event in events)


def test_flush_after_a_pause_interim_closes_the_segment() -> None:
    segmenter = Segmenter(params(), interim_every_ms=1000, interim_pause_ms=100)
    run(segmenter, [(False, 400), (True, 600), (False, 200)])
    final = segmenter.flush(speech_final=False)  # a Finalize at the pause
    assert final.is_final and final.pcm16 is not None and final.end_ms == 1200
    later = spans(run(segmenter, [(False, 200)]))
    assert later == []  # no endpoint for a segment already flushed
