"""Turn detection: a sans-I/O state machine fed one VAD and loudness decision per 20 ms frame.

It answers two questions for the call session: "has the caller finished their turn?" and "is
the caller interrupting the agent?". Every rule that moves state is in ``_TRANSITIONS``; the
detector only measures (voiced, loud and silent run lengths) and looks rules up, so the
behaviour can be read, tested and drawn from the table alone.

    LISTENING ──speech ≥ min_speech_ms (over the agent: confident ≥ bargein_min_speech_ms)──▶
              SPEAKING ──silence ≥ the profile's silence──▶ LISTENING
                                            │  │   or STT final ∧ silence ≥ its floor    [TurnEnded]
                                            │  │   or complete words ∧ complete_silence_ms
                                            │  │   or final words ∧ final_words_silence_ms
                                            │  │   or the end-of-turn model said done
                                            │  │   or max_turn_ms reached
                                            │  └─ silence ≥ speculate_ms, once per pause
                                            │     ─▶ [Paused] (stays SPEAKING: finalize early)
                                            └─ agent talking and confident speech
                                               ≥ bargein_min_speech_ms ─▶ [BargeIn] (stays
                                               SPEAKING; the interruption becomes the turn)

Time is counted in frames, never read from the frames' timestamps: a turn lasts as long as the
audio the detector has been fed (one ``FRAME_MS`` a frame), so a client whose timestamps jump
cannot force ``max_turn_ms``. ``t_ms`` (the session passes the server's monotonic clock) only
stamps the events.

Voiced and loud: the VAD says whether a frame is speech and keeps saying so for ~100 ms after
the words (its hang-over); ``audio.loudness`` says whether a voiced frame is one of the words
(within 35 dB of the utterance's loudest). Speech onset counts voiced frames, as the VAD is
the better judge of *whether* someone speaks; the silence that ends a turn counts from the last
loud frame, so the hang-over no longer delays the end (until a run has had a loud frame, a
voiced frame counts as loud: a very quiet line still ends its turns on the VAD). Barge-in counts
only confident speech (voiced and loud, some of it pitched: ``_BARGEIN_PITCHED_MS``), and only
near-contiguous: a gap over ``_ONSET_GAP_MS``
starts the count again, so a cough (one short loud burst, then its quieter tail) or two clicks
never add up to an interruption.

Speech shorter than ``min_speech_ms`` (a click, a cough) never starts a turn. While the agent is
talking, caller speech that ends before ``bargein_min_speech_ms`` (a backchannel such as
"uh-huh") is dropped without a turn: the agent goes on.

Patience (per question, from ``Listen``): the silence that ends a turn is ``short_silence_ms``
after a yes/no question, ``end_silence_ms`` normally and ``long_silence_ms`` while the caller
spells an e-mail or reads out a phone number (pauses between groups of digits are not the end).

The words so far (``heard``, from the recogniser as the turn goes, judged by
``agent.flow.completeness`` for the answer the question expects): a final transcript that holds
a whole answer ends the turn after ``complete_silence_ms``; words plainly unfinished ("my e-mail
is john dot", "on the") make the patience long for both the silence and the STT floor; final
words that answer nothing yet ("i'd like to book" to a date question, or no words at all) make
both ``unanswered_silence_ms``: the caller pauses mid-sentence; final words that hold a part of
the answer (a first name alone, "at three" without a.m. or p.m.) make both
``partial_silence_ms``: the rest is most likely on its way. A silence that would end the turn
while the recogniser still owes the words of the pause (``words_pending``) waits for them, at
most ``words_wait_ms`` longer: the reply needs them anyway. Anything else changes nothing
at a question whose answer is judged; at an open
question (``open_question``) final words end the turn after ``final_words_silence_ms`` (at least
the STT floor below): the recogniser flushed at the pause (``Paused``), so its own endpointer
will not speak for that audio, and the flush's answer stands for it. Only a *final* transcript
(the recogniser has caught up with the caller) ends a turn early: an interim may lag the audio
by a word that changes the answer.

STT finality: a recogniser with its own endpointer (Deepgram's ``speech_final`` and
``UtteranceEnd``) may end the turn before the VAD silence is reached — it has heard the words
and the intonation, the VAD only the energy. It never ends a turn before the caller has been
silent for the floor (``stt_final_min_silence_ms``; for the long profile half of
``long_silence_ms``, because an endpointer tuned for sentences fires between spelled letters),
and a loud frame after the signal cancels it (the caller went on).

The pause: at ``speculate_ms`` of silence inside the caller's turn the detector says ``Paused``
once (again after the caller speaks and pauses again); the frame pipeline then asks the
recogniser to finish early (``SttStream.pause()``) and may run an end-of-turn audio model whose
verdict (``model_said``) ends the turn if it comes while the caller is still silent.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from slotline.audio.framing import FRAME_MS

if TYPE_CHECKING:  # a type only: agent.flow imports this room
    from slotline.agent.flow.completeness import Completeness

# A gap this short inside speech is a stop consonant or a breath, not the start of silence
# that could reset a speech onset that has not reached min_speech_ms yet (nor the count of
# confident speech towards a barge-in).
_ONSET_GAP_MS = 60
# Of the confident speech that makes a barge-in, at least this much must have a voice's pitch
# (``audio.pitch``): a cough or line crackle is loud and passes the VAD, but has none, while
# words do within a frame or two of their first vowel. Measured over flite and espeak voices
# (``python -m bench.turn_end_set``; the set's coughs and noise bursts): 40 ms stopped the agent
# for 0 of 20 coughs and 2 of 20 noise bursts (all of both without it), and delayed
# interruptions that start with a vowel, a nasal or "w" by 0-20 ms; those starting with an
# unvoiced consonant ("sorry", "stop") by up to 160 ms.
_BARGEIN_PITCHED_MS = 40

Patience = Literal["short", "normal", "long"]
EndReason = Literal["silence", "stt_final", "complete_answer", "model_end", "max_turn"]

# Extractor kinds (agent.flow.model.ExtractorKind) whose answers need another patience.
_SHORT_KINDS = frozenset({"yes_no", "choice"})  # one word: end the turn quickly
_LONG_KINDS = frozenset({"email", "phone"})  # spelled, or read out in groups of digits


def patience_for(kind: str) -> Patience:
    """The patience a question collecting an extractor ``kind`` needs."""
    if kind in _SHORT_KINDS:
        return "short"
    if kind in _LONG_KINDS:
        return "long"
    return "normal"


class TurnState(enum.Enum):
    LISTENING = "listening"
    SPEAKING = "speaking"


class Rule(enum.Enum):
    SPEECH_ONSET = "speech reached min_speech_ms"
    BARGE_IN = "agent talking and confident speech reached bargein_min_speech_ms"
    PAUSE = "silence reached speculate_ms (once per pause)"
    END_OF_TURN = "silence reached the profile's end silence"
    STT_FINAL = "recogniser said final and silence reached its floor"
    COMPLETE_ANSWER = "final words hold a whole answer and silence reached complete_silence_ms"
    WORDS_FINAL = "open question, final words and silence reached final_words_silence_ms"
    MODEL_END = "the end-of-turn model said done during this pause"
    DROP_BACKCHANNEL = "agent talking, speech ended before bargein_min_speech_ms"
    MAX_TURN = "turn reached max_turn_ms"


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    first_voiced_ms: int


@dataclass(frozen=True, slots=True)
class BargeIn:
    first_voiced_ms: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class Paused:
    """The caller has been silent for ``speculate_ms`` inside their turn: a moment to finish
    recognising early, or to ask an end-of-turn model."""

    first_voiced_ms: int
    last_loud_ms: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class TurnEnded:
    first_voiced_ms: int
    last_voiced_ms: int  # the VAD's last voiced frame (its hang-over included)
    at_ms: int
    forced: bool = False  # ended by max_turn_ms, not by silence
    reason: EndReason = "silence"
    patience: Patience = "normal"
    last_loud_ms: int = -1  # the last loud frame: where the caller's words ended


@dataclass(frozen=True, slots=True)
class SpeechDropped:
    """Speech during the agent's turn that ended before it counted as an interruption."""

    first_voiced_ms: int
    last_voiced_ms: int


TurnEvent = SpeechStarted | BargeIn | Paused | TurnEnded | SpeechDropped

# (state, rule) -> next state. A rule absent for a state cannot fire there.
_TRANSITIONS: dict[tuple[TurnState, Rule], TurnState] = {
    (TurnState.LISTENING, Rule.SPEECH_ONSET): TurnState.SPEAKING,
    (TurnState.SPEAKING, Rule.BARGE_IN): TurnState.SPEAKING,
    (TurnState.SPEAKING, Rule.PAUSE): TurnState.SPEAKING,
    (TurnState.SPEAKING, Rule.END_OF_TURN): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.STT_FINAL): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.COMPLETE_ANSWER): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.WORDS_FINAL): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.MODEL_END): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.DROP_BACKCHANNEL): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.MAX_TURN): TurnState.LISTENING,
}
_END_REASON: dict[Rule, EndReason] = {
    Rule.END_OF_TURN: "silence",
    Rule.STT_FINAL: "stt_final",
    Rule.COMPLETE_ANSWER: "complete_answer",
    Rule.WORDS_FINAL: "stt_final",
    Rule.MODEL_END: "model_end",
    Rule.MAX_TURN: "max_turn",
}


def transition_table() -> list[tuple[str, str, str]]:
    """(from, rule, to) rows, for docs and diagrams."""
    return [(s.value, r.value, t.value) for (s, r), t in _TRANSITIONS.items()]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    min_speech_ms: int = 120
    end_silence_ms: int = 600  # the "normal" patience
    bargein_min_speech_ms: int = 300
    max_turn_ms: int = 30_000
    short_silence_ms: int = 400  # yes/no and choices
    long_silence_ms: int = 1200  # e-mail addresses, phone numbers
    # STT finality never ends a turn before this much silence: the endpointer of a cloud
    # recogniser runs on audio that reaches it ~100 ms late, and its result can belong to a
    # pause the caller has already talked through.
    stt_final_min_silence_ms: int = 200
    # Silence that ends a turn whose final words hold a whole answer ("next tuesday"). Long
    # enough to span the gap between two words (~100-150 ms of low energy inside a phrase).
    complete_silence_ms: int = 200
    # Silence inside a turn at which the recogniser is asked to finish early (and the end-of-turn
    # model runs): the final words are then there when the turn ends. At most
    # complete_silence_ms, or a complete answer waits for the words it needs; well below it, so
    # that a vendor's flush (Deepgram's Finalize, ~150 ms) is answered by then. 120 ms: a
    # stop consonant's closure (< 100 ms) inside a word is not a pause.
    speculate_ms: int = 120
    # Silence that ends a turn whose words the recogniser finalised at a pause, when they are
    # not plainly unfinished: the flush (``SttStream.pause()``) stands for the vendor's own
    # endpointer, which no longer fires for audio already flushed. Deepgram's, as we
    # configure it (``endpointing=300``), would have said the same after this much silence.
    final_words_silence_ms: int = 300
    # Silence that ends a turn whose final words answer nothing yet at a question that waits for
    # a typed value ("i'd like to book ..." to "what day suits you?"): the caller pauses inside
    # their sentence. Never shorter than the question's own patience.
    unanswered_silence_ms: int = 1000
    # Silence that ends a turn whose final words hold a part of the answer the extractors
    # completed by a guess (a first name alone, a time without a.m. or p.m.: completeness'
    # "partial"). Never shorter than the question's own patience.
    partial_silence_ms: int = 1000
    # How much longer than its silence a turn waits for words the recogniser owes about a
    # pause (``words_pending``): the reply waits for them anyway, and they may be half an
    # answer ("kate" before "lewis", then ``partial_silence_ms`` applies).
    words_wait_ms: int = 400
    # The end-of-turn model's probability at or above which the caller is taken to be done.
    model_end_threshold: float = 0.5

    def silence_ms(self, patience: Patience) -> int:
        """Silence that ends a turn with ``patience``."""
        if patience == "short":
            return self.short_silence_ms
        if patience == "long":
            return self.long_silence_ms
        return self.end_silence_ms

    def stt_floor_ms(self, patience: Patience) -> int:
        """Silence before STT finality may end a turn with ``patience``."""
        floor = self.stt_final_min_silence_ms
        if patience == "long":
            floor = max(floor, self.long_silence_ms // 2)
        return min(floor, self.silence_ms(patience))


def _nothing_pending() -> bool:
    return False


class TurnDetector:
    """Feed ``frame(voiced, t_ms, loud)`` once per 20 ms frame; returns at most one event.

    ``patience`` (set from the responder's ``Listen``) applies from the next frame on;
    ``stt_final()`` tells it the recogniser's endpointer heard the end of the utterance,
    ``heard()`` how complete the words so far are, ``model_said()`` what the end-of-turn model
    thinks of the current pause.
    """

    __slots__ = (
        "_any_loud",
        "_bargein_sent",
        "_cfg",
        "_confident_gap_ms",
        "_confident_ms",
        "_pitched_ms",
        "_elapsed_ms",
        "_first_voiced_ms",
        "_last_loud_ms",
        "_last_voiced_ms",
        "_model_done",
        "_paused",
        "_quiet_ms",
        "_silence_ms",
        "_soft_run",
        "_speech_ms",
        "_stt_final",
        "_words",
        "_words_final",
        "agent_speaking",
        "open_question",
        "patience",
        "state",
        "words_pending",
    )
    # per run of speech (``_reset_run``); milliseconds unless said otherwise
    _speech_ms: int  # voiced audio: reaches min_speech_ms
    _quiet_ms: int  # since the last voiced frame: resets an onset
    _silence_ms: int  # since the last loud frame: ends the turn
    _soft_run: bool  # a voiced run that began after an unvoiced frame: words, however soft
    _confident_ms: int  # voiced and loud, near-contiguous: reaches bargein_min_speech_ms
    _confident_gap_ms: int  # since the last confident frame
    _pitched_ms: int  # of the confident speech, frames with a voice's pitch
    _elapsed_ms: int  # audio since the run's first voiced frame began
    _first_voiced_ms: int  # frame stamps (t_ms), -1 before any
    _last_voiced_ms: int
    _last_loud_ms: int
    _any_loud: bool
    _bargein_sent: bool
    _stt_final: bool  # the endpointer said the utterance ended, during this pause
    _model_done: bool  # the end-of-turn model said done, during this pause
    _paused: bool  # Paused sent for this pause
    _words: Completeness
    _words_final: bool

    def __init__(self, config: TurnConfig,
                 words_pending: Callable[[], bool] = _nothing_pending) -> None:
        self._cfg = config
        self.state = TurnState.LISTENING
        self.agent_speaking = False
        # the question has no kind of answer to judge the words by (``heard`` says "unknown"
        # for any words): final words then end the turn as the vendor's endpointer would
        self.open_question = True
        self.patience: Patience = "normal"
        # whether the recogniser owes words about the current pause (``SttStream.words_pending``;
        # asked only when a silence would end the turn)
        self.words_pending = words_pending
        self._reset_run()

    @property
    def config(self) -> TurnConfig:
        return self._cfg

    @property
    def words(self) -> Completeness:
        """How complete the caller's words so far are (``heard``); "unknown" between turns."""
        return self._words

    def frame(
        self, voiced: bool, t_ms: int, loud: bool = True, pitched: bool = True
    ) -> TurnEvent | None:
        """One 20 ms frame, stamped ``t_ms`` (milliseconds on any clock; events carry it).
        ``loud``: whether the frame is loud for its utterance (``audio.loudness``); it matters
        only for a voiced frame, and a caller without a loudness measure leaves it True.
        ``pitched``: whether a loud frame has a voice's pitch (``audio.pitch``); it matters only
        for a barge-in, and a caller that does not measure it leaves it True."""
        if self._first_voiced_ms >= 0:
            self._elapsed_ms += FRAME_MS
        if voiced:
            if self._first_voiced_ms < 0:
                self._first_voiced_ms = t_ms
                self._elapsed_ms = 0
            self._last_voiced_ms = t_ms
            self._speech_ms += FRAME_MS
            # Voiced again after an unvoiced frame is new sound, however soft ("yes ...
            # please"): only the voiced run straight after loud frames is the VAD's hang-over.
            if self._quiet_ms > 0:
                self._soft_run = True  # until the next loud or unvoiced frame
            self._quiet_ms = 0
            if loud:
                self._any_loud = True
                self._soft_run = False
            if loud or not self._any_loud or self._soft_run:  # the words: not silence
                self._sound(t_ms, confident=loud, pitched=pitched)
            else:  # the VAD's hang-over after the words, or a quiet tail
                self._silence_ms += FRAME_MS
                self._gap(FRAME_MS)
        else:
            self._soft_run = False
            self._quiet_ms += FRAME_MS
            self._silence_ms += FRAME_MS
            self._gap(FRAME_MS)
            if self.state is TurnState.LISTENING and self._quiet_ms > _ONSET_GAP_MS:
                self._reset_run()
        rule = self._rule()
        if rule is None:
            return None
        return self._apply(rule, t_ms)

    @property
    def interrupting(self) -> bool:
        """The caller's turn in progress began as a barge-in over the agent."""
        return self.state is TurnState.SPEAKING and self._bargein_sent

    def stt_final(self) -> bool:
        """The recogniser says the utterance has ended. Counts only inside a turn while the
        caller is silent (a late result about a pause they have talked through is ignored);
        returns whether it was taken. The turn ends at the next frame past the floor."""
        if self.state is not TurnState.SPEAKING or self._silence_ms == 0:
            return False
        self._stt_final = True
        return True

    def heard(self, words: Completeness, final: bool) -> bool:
        """The words of the current turn so far are ``words`` complete; ``final``: the
        recogniser has caught up with every voiced frame (``providers.base.Heard``). Ignored
        outside a turn (a late result of the turn before); returns whether it was taken."""
        if self.state is not TurnState.SPEAKING:
            return False
        self._words = words
        # words settled during the caller's sound may already be behind it: only a final
        # transcript that came in silence covers all the caller said
        self._words_final = final and self._silence_ms > 0
        return True

    def model_said(self, probability: float, pause: Paused) -> bool:
        """The end-of-turn model's probability that the caller has finished, judged on the
        audio up to ``pause``. Taken (True) only at or above the threshold, and only while that
        pause goes on (same turn, no loud frame since); the turn then ends at the next frame."""
        if (
            self.state is not TurnState.SPEAKING
            or pause.first_voiced_ms != self._first_voiced_ms
            or pause.last_loud_ms != self._last_loud_ms
            or self._silence_ms == 0
            or probability < self._cfg.model_end_threshold
        ):
            return False
        self._model_done = True
        return True

    def reset(self) -> None:
        """Forget any speech in progress (e.g. after the call's state changed)."""
        self.state = TurnState.LISTENING
        self._reset_run()

    def _sound(self, t_ms: int, *, confident: bool, pitched: bool) -> None:
        """A frame of the caller's words: silence starts again; anything that was about the
        pause before it (an endpoint, a model verdict, words final then) no longer holds."""
        self._last_loud_ms = t_ms
        self._silence_ms = 0
        self._stt_final = False  # the caller went on: that end was not the end
        self._model_done = False
        self._paused = False
        self._words_final = False
        if confident:
            self._confident_ms += FRAME_MS
            self._confident_gap_ms = 0
            if pitched:
                self._pitched_ms += FRAME_MS
        else:
            self._gap(FRAME_MS)

    def _gap(self, ms: int) -> None:
        self._confident_gap_ms += ms
        if self._confident_gap_ms > _ONSET_GAP_MS:
            self._confident_ms = 0
            self._pitched_ms = 0

    def _rule(self) -> Rule | None:
        cfg = self._cfg
        if self.state is TurnState.LISTENING:
            # Over the agent, confident speech (voiced, loud, near-contiguous) starts the turn
            # at the barge-in threshold rather than min_speech_ms: the interruption is then
            # decided on the next frame, not only after a whole min_speech_ms.
            if self._speech_ms >= cfg.min_speech_ms or (
                self.agent_speaking and self._confident_ms >= cfg.bargein_min_speech_ms
            ):
                return Rule.SPEECH_ONSET
            return None
        if self._elapsed_ms >= cfg.max_turn_ms:
            return Rule.MAX_TURN
        held_back = self.agent_speaking and not self._bargein_sent  # not the caller's turn yet
        silence = self._silence_ms
        patience = self._patience(held_back)
        end_ms, floor_ms = cfg.silence_ms(patience), cfg.stt_floor_ms(patience)
        if self._words_final and not held_back:
            # no answer yet, or half of one: the caller pauses mid-sentence, whatever an
            # endpointer thinks
            if self._words == "unanswered":
                end_ms = floor_ms = max(end_ms, cfg.unanswered_silence_ms)
            elif self._words == "partial":
                end_ms = floor_ms = max(end_ms, cfg.partial_silence_ms)
        if silence >= end_ms:
            if held_back:
                return Rule.DROP_BACKCHANNEL
            if (not self._words_final and silence < end_ms + cfg.words_wait_ms
                    and self.words_pending()):
                return None  # the pause's words are on their way: the reply needs them anyway
            return Rule.END_OF_TURN
        if held_back:
            return Rule.BARGE_IN if (self._confident_ms >= cfg.bargein_min_speech_ms
                                     and self._pitched_ms >= _BARGEIN_PITCHED_MS) else None
        if silence == 0:
            return None
        if self._stt_final and silence >= floor_ms:
            return Rule.STT_FINAL
        if self._words_final and self._words == "complete" and silence >= cfg.complete_silence_ms:
            return Rule.COMPLETE_ANSWER
        if (self._words_final and self._words == "unknown" and self.open_question
                and silence >= max(cfg.final_words_silence_ms, cfg.stt_floor_ms(patience))):
            return Rule.WORDS_FINAL
        if self._model_done and self._words != "incomplete":
            return Rule.MODEL_END
        if not self._paused and silence >= cfg.speculate_ms:
            return Rule.PAUSE
        return None

    def _patience(self, held_back: bool) -> Patience:
        """The question's patience, or the long one while the caller's own turn has words
        plainly unfinished (speech over the agent is a backchannel until it barges in)."""
        if self._words == "incomplete" and not held_back:
            return "long"
        return self.patience

    def _apply(self, rule: Rule, t_ms: int) -> TurnEvent:
        try:
            self.state = _TRANSITIONS[(self.state, rule)]
        except KeyError:  # pragma: no cover - _rule only proposes rules valid for the state
            raise AssertionError(f"no transition for {rule} in {self.state}") from None
        first, last = self._first_voiced_ms, self._last_voiced_ms
        if rule is Rule.SPEECH_ONSET:
            return SpeechStarted(first_voiced_ms=first)
        if rule is Rule.BARGE_IN:
            self._bargein_sent = True
            return BargeIn(first_voiced_ms=first, at_ms=t_ms + FRAME_MS)
        if rule is Rule.PAUSE:
            self._paused = True
            return Paused(first_voiced_ms=first, last_loud_ms=self._last_loud_ms,
                          at_ms=t_ms + FRAME_MS)
        last_loud = self._last_loud_ms
        patience = self._patience(self.agent_speaking and not self._bargein_sent)
        self._reset_run()
        if rule is Rule.DROP_BACKCHANNEL:
            return SpeechDropped(first_voiced_ms=first, last_voiced_ms=last)
        return TurnEnded(
            first_voiced_ms=first,
            last_voiced_ms=last,
            at_ms=t_ms + FRAME_MS,
            forced=rule is Rule.MAX_TURN,
            reason=_END_REASON[rule],
            patience=patience,
            last_loud_ms=last_loud,
        )

    def _reset_run(self) -> None:
        self._soft_run = False
        self._speech_ms = 0
        self._quiet_ms = 0
        self._silence_ms = 0
        self._confident_ms = 0
        self._confident_gap_ms = 0
        self._pitched_ms = 0
        self._elapsed_ms = 0
        self._first_voiced_ms = -1
        self._last_voiced_ms = -1
        self._last_loud_ms = -1
        self._any_loud = False
        self._bargein_sent = False
        self._stt_final = False
        self._model_done = False
        self._paused = False
        self._words = "unknown"
        self._words_final = False
