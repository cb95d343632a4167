"""Who has the floor on one call: a sans-I/O state machine, fed events, answering commands.

Everything that decides whether the agent talks, stops, picks up again or hangs up lives here;
the session (``agent.call.session``) only feeds it events — from the turn detector, the speaker,
the recogniser's transcript and the reply — and carries out the commands it answers. Every rule
that moves state is a row of ``_TRANSITIONS``; a (state, rule) pair that is not a row is either
listed in ``_IGNORED`` (it can happen and changes nothing) or raises ``FloorError`` (it cannot
happen: a bug in the pump). ``transition_table()`` draws the same rows.

    LISTENING ◀──voice onset / turn ended──▶ CALLER_SPEAKING
        │  ▲                                         │
        │  └─────────────── audio stopped ───┐       │ audio started (a queued reply)
        │ audio started                      │       ▼
        └──────────────────────────────▶ AGENT_SPEAKING ◀──────────── resumed [Unhold]
                                             │                            │
                      barge-in [Clear, Hold] │          ┌── barge-in ──── RESUMING
                                             ▼          ▼  [Clear, Hold]   ▲
                                            PAUSED ── no words, or only a backchannel
                                             │        ("uh-huh", "okay") [Resume]
                        words or a keypress  │
                 [CancelReply, StartReply]   ▼
                                         LISTENING

    any state but ENDED ──hang-up asked [HangUp]──▶ HANGING_UP ──stream stopped──▶ ENDED
    (every state ──stream stopped──▶ ENDED)

Barge-in stops at once and forgives (issue 12, lever 3): the turn detector reports a barge-in
after ``bargein_min_speech_ms`` of caller speech over the agent; the floor clears Twilio's buffer
and holds the reply there and then, without waiting for words. The caller's transcript decides
afterwards: real words (or a keypress) are an interruption — the reply is cancelled and the
caller's turn answered; no words (a cough, line noise) or only a backchannel are not — the cut
sentences play again from the first unheard one and the held reply goes on. The caller hears a
short pause, not a lost sentence. A backchannel is judged by what the words hold for the
question asked (``agent.flow.backchannel``), not by a list of words: a recogniser hears "mm
hmm" as "m m a trim".

Fillers: the reply reports when it has been slow (``ReplyStalled``); a filler is said only in
silence — never over the agent's or the caller's voice, never twice in a row, never while an
interruption is held or the goodbye plays.

``agent_speaking`` is the one input the turn detector needs from here: while it is true, caller
speech shorter than the barge-in threshold is dropped and longer speech is a barge-in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from slotline.agent.flow.backchannel import is_backchannel


class FloorState(enum.Enum):
    LISTENING = "listening"  # nobody talks; the caller may start
    CALLER_SPEAKING = "caller speaking"
    AGENT_SPEAKING = "agent speaking"  # agent audio on its way or playing
    PAUSED = "paused"  # cleared for a possible interruption; the reply is held
    RESUMING = "resuming"  # not an interruption: the cut sentences play again
    HANGING_UP = "hanging up"  # the goodbye plays; nothing interrupts it any more
    ENDED = "ended"  # the stream stopped or the socket closed


class FloorError(Exception):
    """An event the floor cannot receive in its state: the pump is wrong, not the caller."""


# ---- events in (past tense) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoiceStarted:
    """The turn detector heard the caller start speaking (``turns.SpeechStarted``)."""


@dataclass(frozen=True, slots=True)
class BargedIn:
    """The caller spoke over the agent for ``bargein_min_speech_ms`` (``turns.BargeIn``)."""


@dataclass(frozen=True, slots=True)
class VoiceDropped:
    """Caller speech over the agent ended before it counted (``turns.SpeechDropped``)."""


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The turn detector ended the caller's turn; its words are not known yet."""


@dataclass(frozen=True, slots=True)
class WordsHeard:
    """The recogniser's final transcript of an ended turn (may be empty); ``kind``: the
    extractor of the question the caller was last asked ("" for none), ``region``: where a
    phone number is read; both judge whether words over the agent were a backchannel."""

    text: str
    kind: str = ""
    region: str = ""


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """A DTMF digit: never noise."""


@dataclass(frozen=True, slots=True)
class AudioStarted:
    """The speaker has agent audio on its way or playing."""


@dataclass(frozen=True, slots=True)
class AudioStopped:
    """Nothing of the agent's is being sent or playing (every mark came back)."""


@dataclass(frozen=True, slots=True)
class ResumeEnded:
    """The replay of the cut sentences is over; ``replayed``: all of them went out."""

    replayed: bool


@dataclass(frozen=True, slots=True)
class ReplyStalled:
    """The reply has said nothing for ``filler_after_ms`` after the caller's turn;
    ``after_filler``: the last thing the agent said was a filler."""

    after_filler: bool


@dataclass(frozen=True, slots=True)
class HangupAsked:
    """The reply asked to end the call (the flow's ``Hangup``, or an error)."""


@dataclass(frozen=True, slots=True)
class StreamStopped:
    """Twilio's ``stop`` came, or the socket closed."""


FloorEvent = (
    VoiceStarted | BargedIn | VoiceDropped | TurnEnded | WordsHeard | KeyPressed | AudioStarted
    | AudioStopped | ResumeEnded | ReplyStalled | HangupAsked | StreamStopped
)


# ---- commands out (imperative) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clear:
    """Send Twilio ``clear`` now; what it had not played is cut (the speaker keeps it)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Stop the reply from sending, without cancelling it."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Play the cut sentences again, from the first unheard one; report ``ResumeEnded``."""


@dataclass(frozen=True, slots=True)
class Unhold:
    """Let the held reply send again (its current sentence from its start)."""


@dataclass(frozen=True, slots=True)
class CancelReply:
    """Cancel the held reply; the responder hears what was heard of it."""


@dataclass(frozen=True, slots=True)
class StartReply:
    """Answer the caller's turn (after any reply already queued)."""


@dataclass(frozen=True, slots=True)
class SayFiller:
    """Say a filler while the reply keeps working."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """Let the last words play, then end the call."""


FloorCommand = Clear | Hold | Resume | Unhold | CancelReply | StartReply | SayFiller | HangUp


class Rule(enum.Enum):
    VOICE_ONSET = "voice onset"
    BARGE_IN = "barge-in"
    VOICE_DROPPED = "voice dropped"
    TURN_ENDED = "turn ended"
    WORDS = "words"
    BACKCHANNEL = "only a backchannel"
    NO_WORDS = "no words"
    KEYPRESS = "keypress"
    AUDIO_STARTED = "audio started"
    AUDIO_STOPPED = "audio stopped"
    RESUMED = "resumed"
    RESUME_CUT = "resume cut"
    REPLY_STALLED = "reply stalled"
    STALLED_AFTER_FILLER = "reply stalled after a filler"
    HANGUP_ASKED = "hang-up asked"
    STREAM_STOPPED = "stream stopped"


def rule_of(event: FloorEvent) -> Rule:
    """The rule an event proposes (a transcript is classified by its words)."""
    match event:
        case WordsHeard(text=text, kind=kind, region=region):
            if not text.strip():
                return Rule.NO_WORDS
            backchannel = is_backchannel(text, kind=kind, region=region)
            return Rule.BACKCHANNEL if backchannel else Rule.WORDS
        case ResumeEnded(replayed=replayed):
            return Rule.RESUMED if replayed else Rule.RESUME_CUT
        case ReplyStalled(after_filler=after):
            return Rule.STALLED_AFTER_FILLER if after else Rule.REPLY_STALLED
    return _RULE_OF[type(event)]


_RULE_OF: dict[type, Rule] = {
    VoiceStarted: Rule.VOICE_ONSET,
    BargedIn: Rule.BARGE_IN,
    VoiceDropped: Rule.VOICE_DROPPED,
    TurnEnded: Rule.TURN_ENDED,
    KeyPressed: Rule.KEYPRESS,
    AudioStarted: Rule.AUDIO_STARTED,
    AudioStopped: Rule.AUDIO_STOPPED,
    HangupAsked: Rule.HANGUP_ASKED,
    StreamStopped: Rule.STREAM_STOPPED,
}

S, R = FloorState, Rule
_Row = tuple[FloorState, tuple[FloorCommand, ...]]
_REPLY: tuple[FloorCommand, ...] = (StartReply(),)
_STOP: tuple[FloorCommand, ...] = (Clear(), Hold())

# (state, rule) -> (next state, commands).
_TRANSITIONS: dict[tuple[FloorState, Rule], _Row] = {
    # the caller has the floor, or nobody
    (S.LISTENING, R.VOICE_ONSET): (S.CALLER_SPEAKING, ()),
    (S.LISTENING, R.WORDS): (S.LISTENING, _REPLY),
    (S.LISTENING, R.BACKCHANNEL): (S.LISTENING, _REPLY),  # "okay" can be an answer
    (S.LISTENING, R.NO_WORDS): (S.LISTENING, _REPLY),  # the responder may ask again
    (S.LISTENING, R.KEYPRESS): (S.LISTENING, _REPLY),
    (S.LISTENING, R.AUDIO_STARTED): (S.AGENT_SPEAKING, ()),
    (S.LISTENING, R.REPLY_STALLED): (S.LISTENING, (SayFiller(),)),
    (S.CALLER_SPEAKING, R.TURN_ENDED): (S.LISTENING, ()),
    (S.CALLER_SPEAKING, R.WORDS): (S.CALLER_SPEAKING, _REPLY),  # an earlier turn's words
    (S.CALLER_SPEAKING, R.BACKCHANNEL): (S.CALLER_SPEAKING, _REPLY),
    (S.CALLER_SPEAKING, R.NO_WORDS): (S.CALLER_SPEAKING, _REPLY),
    (S.CALLER_SPEAKING, R.KEYPRESS): (S.CALLER_SPEAKING, _REPLY),
    (S.CALLER_SPEAKING, R.AUDIO_STARTED): (S.AGENT_SPEAKING, ()),  # a queued reply
    # the agent has the floor
    (S.AGENT_SPEAKING, R.BARGE_IN): (S.PAUSED, _STOP),
    (S.AGENT_SPEAKING, R.AUDIO_STOPPED): (S.LISTENING, ()),
    (S.AGENT_SPEAKING, R.WORDS): (S.AGENT_SPEAKING, _REPLY),  # a turn begun before the audio
    (S.AGENT_SPEAKING, R.BACKCHANNEL): (S.AGENT_SPEAKING, _REPLY),
    (S.AGENT_SPEAKING, R.NO_WORDS): (S.AGENT_SPEAKING, _REPLY),
    (S.AGENT_SPEAKING, R.KEYPRESS): (S.AGENT_SPEAKING, _REPLY),  # typed ahead: no interruption
    # a barge-in is being decided by the caller's words
    (S.PAUSED, R.WORDS): (S.LISTENING, (CancelReply(), StartReply())),
    (S.PAUSED, R.KEYPRESS): (S.LISTENING, (CancelReply(), StartReply())),
    (S.PAUSED, R.NO_WORDS): (S.RESUMING, (Resume(),)),
    (S.PAUSED, R.BACKCHANNEL): (S.RESUMING, (Resume(),)),
    (S.RESUMING, R.RESUMED): (S.AGENT_SPEAKING, (Unhold(),)),
    (S.RESUMING, R.BARGE_IN): (S.PAUSED, _STOP),
}
# Hanging up and the end of the stream are the same from every state that is still live.
for _state in (S.LISTENING, S.CALLER_SPEAKING, S.AGENT_SPEAKING, S.PAUSED, S.RESUMING):
    _TRANSITIONS[(_state, R.HANGUP_ASKED)] = (S.HANGING_UP, (HangUp(),))
for _state in FloorState:
    if _state is not S.ENDED:
        _TRANSITIONS[(_state, R.STREAM_STOPPED)] = (S.ENDED, ())

# (state, rule) pairs that can happen and change nothing, with why.
_IGNORED: dict[tuple[FloorState, Rule], str] = {}


def _ignore(states: tuple[FloorState, ...], rules: tuple[Rule, ...], why: str) -> None:
    for state in states:
        for rule in rules:
            _IGNORED[(state, rule)] = why


_LIVE = (S.LISTENING, S.CALLER_SPEAKING, S.AGENT_SPEAKING, S.PAUSED, S.RESUMING)
_ignore((S.LISTENING, S.CALLER_SPEAKING), (R.BARGE_IN, R.VOICE_DROPPED),
        "the agent fell silent in the same frame the detector decided")
_ignore((S.LISTENING,), (R.TURN_ENDED,), "a turn whose onset came while the agent spoke")
_ignore((S.LISTENING, S.CALLER_SPEAKING), (R.AUDIO_STOPPED,), "the agent was silent already")
_ignore((S.CALLER_SPEAKING,), (R.VOICE_ONSET,), "the caller is speaking already")
_ignore((S.CALLER_SPEAKING,), (R.REPLY_STALLED,), "never a filler over the caller")
_ignore((S.LISTENING, S.CALLER_SPEAKING), (R.STALLED_AFTER_FILLER,), "never two fillers in a row")
_ignore((S.AGENT_SPEAKING,), (R.VOICE_ONSET, R.VOICE_DROPPED, R.TURN_ENDED, R.AUDIO_STARTED),
        "caller speech shorter than a barge-in, or audio still on")
_ignore((S.AGENT_SPEAKING,), (R.REPLY_STALLED, R.STALLED_AFTER_FILLER),
        "never a filler over the agent")
_ignore((S.PAUSED,), (R.BARGE_IN, R.VOICE_ONSET, R.VOICE_DROPPED, R.TURN_ENDED),
        "held already: the transcript decides")
_ignore((S.PAUSED, S.RESUMING), (R.AUDIO_STARTED, R.AUDIO_STOPPED),
        "the audio changes because of the hold or the replay")
_ignore((S.PAUSED, S.RESUMING), (R.REPLY_STALLED, R.STALLED_AFTER_FILLER),
        "never a filler while an interruption is held")
_ignore((S.PAUSED,), (R.RESUMED, R.RESUME_CUT),
        "a barge-in during the replay: the new hold decides")
_ignore((S.RESUMING,), (R.VOICE_ONSET, R.VOICE_DROPPED, R.TURN_ENDED, R.RESUME_CUT),
        "caller speech shorter than a barge-in over the replay")
_ignore((S.HANGING_UP,), tuple(r for r in Rule if r is not R.STREAM_STOPPED),
        "the goodbye plays to the end; nothing is answered after it")
_ignore((S.ENDED,), tuple(Rule), "the call is over")


def transition_table() -> list[tuple[str, str, str, str]]:
    """(from, rule, to, commands) rows, for docs and diagrams."""
    return [
        (s.value, r.value, t.value, ", ".join(type(c).__name__ for c in commands))
        for (s, r), (t, commands) in _TRANSITIONS.items()
    ]


class Floor:
    """``handle(event)`` moves the state by the table and returns the commands to carry out,
    in order."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = FloorState.LISTENING

    @property
    def agent_speaking(self) -> bool:
        """For the turn detector: caller speech now is over the agent's voice."""
        return self.state in _AGENT_AUDIBLE

    @property
    def may_reply(self) -> bool:
        """A queued reply may start: no interruption is being decided, no goodbye playing."""
        return self.state in _MAY_REPLY

    def handle(self, event: FloorEvent) -> tuple[FloorCommand, ...]:
        rule = rule_of(event)
        key = (self.state, rule)
        row = _TRANSITIONS.get(key)
        if row is None:
            if key in _IGNORED:
                return ()
            raise FloorError(f"{type(event).__name__} ({rule.value}) in {self.state.value}")
        self.state, commands = row
        return commands


_AGENT_AUDIBLE = frozenset({S.AGENT_SPEAKING, S.RESUMING, S.HANGING_UP})
_MAY_REPLY = frozenset({S.LISTENING, S.CALLER_SPEAKING, S.AGENT_SPEAKING})
