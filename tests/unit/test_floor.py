"""The floor's table, row by row: every transition, every ignored pair, every rejected one."""

from __future__ import annotations

import pytest

from slotline.agent.call import floor as fl
from slotline.agent.call.floor import (
    AudioStarted,
    AudioStopped,
    BargedIn,
    CancelReply,
    Clear,
    Floor,
    FloorError,
    FloorEvent,
    FloorState,
    HangUp,
    HangupAsked,
    Hold,
    KeyPressed,
    ReplyStalled,
    Resume,
    ResumeEnded,
    Rule,
    SayFiller,
    StartReply,
    StreamStopped,
    TurnEnded,
    Unhold,
    VoiceDropped,
    VoiceStarted,
    WordsHeard,
    rule_of,
    transition_table,
)

S = FloorState

# One event for each rule.
EVENT: dict[Rule, FloorEvent] = {
    Rule.VOICE_ONSET: VoiceStarted(),
    Rule.BARGE_IN: BargedIn(),
    Rule.VOICE_DROPPED: VoiceDropped(),
    Rule.TURN_ENDED: TurnEnded(),
    Rule.WORDS: WordsHeard("wait, make it four"),
    Rule.BACKCHANNEL: WordsHeard("uh huh"),
    Rule.NO_WORDS: WordsHeard(" "),
    Rule.KEYPRESS: KeyPressed(),
    Rule.AUDIO_STARTED: AudioStarted(),
    Rule.AUDIO_STOPPED: AudioStopped(),
    Rule.RESUMED: ResumeEnded(replayed=True),
    Rule.RESUME_CUT: ResumeEnded(replayed=False),
    Rule.REPLY_STALLED: ReplyStalled(after_filler=False),
    Rule.STALLED_AFTER_FILLER: ReplyStalled(after_filler=True),
    Rule.HANGUP_ASKED: HangupAsked(),
    Rule.STREAM_STOPPED: StreamStopped(),
}

REPLY = (StartReply(),)
STOP = (Clear(), Hold())
HANG = (S.HANGING_UP, (HangUp(),))
END = (S.ENDED, ())

# The whole table, written out again: (state, rule) -> (next state, commands).
EXPECTED: dict[tuple[FloorState, Rule], tuple[FloorState, tuple[object, ...]]] = {
    (S.LISTENING, Rule.VOICE_ONSET): (S.CALLER_SPEAKING, ()),
    (S.LISTENING, Rule.WORDS): (S.LISTENING, REPLY),
    (S.LISTENING, Rule.BACKCHANNEL): (S.LISTENING, REPLY),
    (S.LISTENING, Rule.NO_WORDS): (S.LISTENING, REPLY),
    (S.LISTENING, Rule.KEYPRESS): (S.LISTENING, REPLY),
    (S.LISTENING, Rule.AUDIO_STARTED): (S.AGENT_SPEAKING, ()),
    (S.LISTENING, Rule.REPLY_STALLED): (S.LISTENING, (SayFiller(),)),
    (S.LISTENING, Rule.HANGUP_ASKED): HANG,
    (S.LISTENING, Rule.STREAM_STOPPED): END,
    (S.CALLER_SPEAKING, Rule.TURN_ENDED): (S.LISTENING, ()),
    (S.CALLER_SPEAKING, Rule.WORDS): (S.CALLER_SPEAKING, REPLY),
    (S.CALLER_SPEAKING, Rule.BACKCHANNEL): (S.CALLER_SPEAKING, REPLY),
    (S.CALLER_SPEAKING, Rule.NO_WORDS): (S.CALLER_SPEAKING, REPLY),
    (S.CALLER_SPEAKING, Rule.KEYPRESS): (S.CALLER_SPEAKING, REPLY),
    (S.CALLER_SPEAKING, Rule.AUDIO_STARTED): (S.AGENT_SPEAKING, ()),
    (S.CALLER_SPEAKING, Rule.HANGUP_ASKED): HANG,
    (S.CALLER_SPEAKING, Rule.STREAM_STOPPED): END,
    (S.AGENT_SPEAKING, Rule.BARGE_IN): (S.PAUSED, STOP),
    (S.AGENT_SPEAKING, Rule.AUDIO_STOPPED): (S.LISTENING, ()),
    (S.AGENT_SPEAKING, Rule.WORDS): (S.AGENT_SPEAKING, REPLY),
    (S.AGENT_SPEAKING, Rule.BACKCHANNEL): (S.AGENT_SPEAKING, REPLY),
    (S.AGENT_SPEAKING, Rule.NO_WORDS): (S.AGENT_SPEAKING, REPLY),
    (S.AGENT_SPEAKING, Rule.KEYPRESS): (S.AGENT_SPEAKING, REPLY),
    (S.AGENT_SPEAKING, Rule.HANGUP_ASKED): HANG,
    (S.AGENT_SPEAKING, Rule.STREAM_STOPPED): END,
    (S.PAUSED, Rule.WORDS): (S.LISTENING, (CancelReply(), StartReply())),
    (S.PAUSED, Rule.KEYPRESS): (S.LISTENING, (CancelReply(), StartReply())),
    (S.PAUSED, Rule.NO_WORDS): (S.RESUMING, (Resume(),)),
    (S.PAUSED, Rule.BACKCHANNEL): (S.RESUMING, (Resume(),)),
    (S.PAUSED, Rule.HANGUP_ASKED): HANG,
    (S.PAUSED, Rule.STREAM_STOPPED): END,
    (S.RESUMING, Rule.RESUMED): (S.AGENT_SPEAKING, (Unhold(),)),
    (S.RESUMING, Rule.BARGE_IN): (S.PAUSED, STOP),
    (S.RESUMING, Rule.HANGUP_ASKED): HANG,
    (S.RESUMING, Rule.STREAM_STOPPED): END,
    (S.HANGING_UP, Rule.STREAM_STOPPED): END,
}

# Pairs the pump never produces: they raise.
REJECTED = {
    (S.LISTENING, Rule.RESUMED), (S.LISTENING, Rule.RESUME_CUT),
    (S.CALLER_SPEAKING, Rule.RESUMED), (S.CALLER_SPEAKING, Rule.RESUME_CUT),
    (S.AGENT_SPEAKING, Rule.RESUMED), (S.AGENT_SPEAKING, Rule.RESUME_CUT),
    # the pump resumes and reads the inbox in one task: no turn is decided during a replay
    (S.RESUMING, Rule.WORDS), (S.RESUMING, Rule.BACKCHANNEL), (S.RESUMING, Rule.NO_WORDS),
    (S.RESUMING, Rule.KEYPRESS),
}


def name(key: tuple[FloorState, Rule]) -> str:
    return f"{key[0].name}-{key[1].name}"


IGNORED = sorted(fl._IGNORED, key=name)
REJECTED_KEYS = sorted(REJECTED, key=name)


def floor_in(state: FloorState) -> Floor:
    floor = Floor()
    floor.state = state
    return floor


def test_every_event_proposes_its_rule() -> None:
    assert {rule_of(event) for event in EVENT.values()} == set(Rule)
    assert all(rule_of(event) is rule for rule, event in EVENT.items())


@pytest.mark.parametrize(("key", "row"), list(EXPECTED.items()),
                         ids=[name(k) for k in EXPECTED])
def test_each_row(key: tuple[FloorState, Rule], row: tuple[FloorState, tuple[object, ...]]) -> None:
    state, rule = key
    floor = floor_in(state)
    assert floor.handle(EVENT[rule]) == row[1]
    assert floor.state is row[0]


def test_the_table_is_exactly_the_expected_rows() -> None:
    assert fl._TRANSITIONS == EXPECTED
    assert len(transition_table()) == len(EXPECTED)
    assert ("paused", "words", "listening", "CancelReply, StartReply") in transition_table()


def test_every_pair_is_a_row_ignored_or_rejected() -> None:
    rows, ignored = set(EXPECTED), set(fl._IGNORED)
    assert not rows & ignored and not rows & REJECTED and not ignored & REJECTED
    assert rows | ignored | REJECTED == {(s, r) for s in FloorState for r in Rule}


@pytest.mark.parametrize("key", IGNORED, ids=[name(k) for k in IGNORED])
def test_ignored_pairs_change_nothing(key: tuple[FloorState, Rule]) -> None:
    state, rule = key
    floor = floor_in(state)
    assert floor.handle(EVENT[rule]) == ()
    assert floor.state is state


@pytest.mark.parametrize("key", REJECTED_KEYS, ids=[name(k) for k in REJECTED_KEYS])
def test_impossible_pairs_raise(key: tuple[FloorState, Rule]) -> None:
    state, rule = key
    floor = floor_in(state)
    with pytest.raises(FloorError):
        floor.handle(EVENT[rule])
    assert floor.state is state


@pytest.mark.parametrize(
    ("heard", "rule"),
    [(WordsHeard("uh huh"), Rule.BACKCHANNEL), (WordsHeard("Yeah, right."), Rule.BACKCHANNEL),
     # what a recogniser made of "mm hmm" and "uh huh": nothing anyone can use
     (WordsHeard("m m a trim", "date"), Rule.BACKCHANNEL), (WordsHeard("the"), Rule.BACKCHANNEL),
     # a real short answer, a request to hold, a question: the caller's turn
     (WordsHeard("yes", "yes_no"), Rule.WORDS), (WordsHeard("no"), Rule.WORDS),
     (WordsHeard("tuesday", "name"), Rule.WORDS), (WordsHeard("hold on"), Rule.WORDS),
     (WordsHeard("okay wait"), Rule.WORDS), (WordsHeard("what was that"), Rule.WORDS),
     # a surname alone answers the name question, and means nothing at another
     (WordsHeard("lopez", "name"), Rule.WORDS), (WordsHeard("lopez", "date"), Rule.BACKCHANNEL)],
    ids=lambda v: repr(v.text) + "@" + v.kind if isinstance(v, WordsHeard) else v.name,
)
def test_words_are_a_backchannel_by_what_they_hold_for_the_question(
    heard: WordsHeard, rule: Rule
) -> None:
    assert rule_of(heard) is rule


def test_a_misheard_backchannel_over_the_agent_is_forgiven_and_an_answer_is_not() -> None:
    forgiven = floor_in(S.PAUSED)
    assert forgiven.handle(WordsHeard("i'm m a trim m", "time")) == (Resume(),)
    assert forgiven.state is S.RESUMING
    answered = floor_in(S.PAUSED)
    assert answered.handle(WordsHeard("two pm", "date")) == (CancelReply(), StartReply())
    assert answered.state is S.LISTENING


def test_agent_speaking_and_may_reply_follow_the_state() -> None:
    speaking = {s for s in FloorState if floor_in(s).agent_speaking}
    assert speaking == {S.AGENT_SPEAKING, S.RESUMING, S.HANGING_UP}
    may_reply = {s for s in FloorState if floor_in(s).may_reply}
    assert may_reply == {S.LISTENING, S.CALLER_SPEAKING, S.AGENT_SPEAKING}


def test_a_cough_over_the_agent_is_forgiven_and_the_reply_goes_on() -> None:
    floor = Floor()
    steps: list[tuple[FloorEvent, tuple[object, ...]]] = [
        (AudioStarted(), ()),
        (VoiceStarted(), ()),
        (BargedIn(), STOP),
        (AudioStopped(), ()),  # the clear emptied Twilio's buffer
        (TurnEnded(), ()),
        (WordsHeard(""), (Resume(),)),
        (AudioStarted(), ()),
        (ResumeEnded(replayed=True), (Unhold(),)),
        (AudioStopped(), ()),
    ]
    for event, commands in steps:
        assert floor.handle(event) == commands, event
    assert floor.state is S.LISTENING


def test_words_over_the_replay_interrupt_it() -> None:
    floor = floor_in(S.RESUMING)
    assert floor.handle(BargedIn()) == STOP
    assert floor.handle(ResumeEnded(replayed=False)) == ()  # the replay saw the new hold
    assert floor.handle(WordsHeard("no stop")) == (CancelReply(), StartReply())
    assert floor.state is S.LISTENING and floor.may_reply


def test_one_filler_in_silence_and_never_over_the_goodbye() -> None:
    floor = Floor()
    assert floor.handle(ReplyStalled(after_filler=False)) == (SayFiller(),)
    assert floor.handle(ReplyStalled(after_filler=True)) == ()
    assert floor.handle(HangupAsked()) == (HangUp(),)
    assert floor.handle(ReplyStalled(after_filler=False)) == ()
    assert floor.handle(BargedIn()) == () and floor.agent_speaking
    assert floor.handle(StreamStopped()) == () and floor.state is S.ENDED
