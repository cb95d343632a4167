"""Turn detection: a sans-I/O state machine fed one VAD decision per 20 ms frame.

It answers two questions for the call session: "has the caller finished their turn?" and "is
the caller interrupting the agent?". Every rule that moves state is in ``_TRANSITIONS``; the
detector only measures (voiced and silent run lengths) and looks rules up, so the behaviour can
be read, tested and drawn from the table alone.

    LISTENING ──speech ≥ min_speech_ms──▶ SPEAKING ──silence ≥ the profile's silence──▶ LISTENING
                                            │      or STT final ∧ silence ≥ its floor    [TurnEnded]
                                            │      or max_turn_ms reached
                                            └─ agent talking and speech ≥ bargein_min_speech_ms
                                               ─▶ [BargeIn] (stays SPEAKING; the interruption
                                               becomes the caller's turn)

Time is counted in frames, never read from the frames' timestamps: a turn lasts as long as the
audio the detector has been fed (one ``FRAME_MS`` a frame), so a client whose timestamps jump
cannot force ``max_turn_ms``. ``t_ms`` (the session passes the server's monotonic clock) only
stamps the events.

Speech shorter than ``min_speech_ms`` (a click, a cough) never starts a turn. While the agent is
talking, caller speech that ends before ``bargein_min_speech_ms`` (a backchannel such as
"uh-huh") is dropped without a turn: the agent goes on.

Patience (per question, from ``Listen``): the silence that ends a turn is ``short_silence_ms``
after a yes/no question, ``end_silence_ms`` normally and ``long_silence_ms`` while the caller
spells an e-mail or reads out a phone number (pauses between groups of digits are not the end).

STT finality: a recogniser with its own endpointer (Deepgram's ``speech_final`` and
``UtteranceEnd``) may end the turn before the VAD silence is reached — it has heard the words
and the intonation, the VAD only the energy. It never ends a turn before the caller has been
silent for the floor (``stt_final_min_silence_ms``; for the long profile half of
``long_silence_ms``, because an endpointer tuned for sentences fires between spelled letters),
and a voiced frame after the signal cancels it (the caller went on).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

FRAME_MS = 20
# A gap this short inside speech is a stop consonant or a breath, not the start of silence
# that could reset a speech onset that has not reached min_speech_ms yet.
_ONSET_GAP_MS = 60

Patience = Literal["short", "normal", "long"]
EndReason = Literal["silence", "stt_final", "max_turn"]

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
    BARGE_IN = "agent talking and speech reached bargein_min_speech_ms"
    END_OF_TURN = "silence reached the profile's end silence"
    STT_FINAL = "recogniser said final and silence reached its floor"
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
class TurnEnded:
    first_voiced_ms: int
    last_voiced_ms: int
    at_ms: int
    forced: bool = False  # ended by max_turn_ms, not by silence
    reason: EndReason = "silence"
    patience: Patience = "normal"


@dataclass(frozen=True, slots=True)
class SpeechDropped:
    """Speech during the agent's turn that ended before it counted as an interruption."""

    first_voiced_ms: int
    last_voiced_ms: int


TurnEvent = SpeechStarted | BargeIn | TurnEnded | SpeechDropped

# (state, rule) -> next state. A rule absent for a state cannot fire there.
_TRANSITIONS: dict[tuple[TurnState, Rule], TurnState] = {
    (TurnState.LISTENING, Rule.SPEECH_ONSET): TurnState.SPEAKING,
    (TurnState.SPEAKING, Rule.BARGE_IN): TurnState.SPEAKING,
    (TurnState.SPEAKING, Rule.END_OF_TURN): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.STT_FINAL): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.DROP_BACKCHANNEL): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.MAX_TURN): TurnState.LISTENING,
}
_END_REASON: dict[Rule, EndReason] = {
    Rule.END_OF_TURN: "silence",
    Rule.STT_FINAL: "stt_final",
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


class TurnDetector:
    """Feed ``frame(voiced, t_ms)`` once per 20 ms frame; returns at most one event.

    ``patience`` (set by the session from the responder's ``Listen``) applies from the next
    frame on; ``stt_final()`` tells it the recogniser has heard the end of the utterance.
    """

    __slots__ = (
        "_bargein_sent",
        "_cfg",
        "_elapsed_ms",
        "_first_voiced_ms",
        "_last_voiced_ms",
        "_silence_ms",
        "_speech_ms",
        "_stt_final",
        "agent_speaking",
        "patience",
        "state",
    )

    def __init__(self, config: TurnConfig) -> None:
        self._cfg = config
        self.state = TurnState.LISTENING
        self.agent_speaking = False
        self.patience: Patience = "normal"
        self._speech_ms = 0
        self._silence_ms = 0
        self._elapsed_ms = 0  # audio since the run's first voiced frame began
        self._first_voiced_ms = -1
        self._last_voiced_ms = -1
        self._bargein_sent = False
        self._stt_final = False

    @property
    def config(self) -> TurnConfig:
        return self._cfg

    def frame(self, voiced: bool, t_ms: int) -> TurnEvent | None:
        """One 20 ms frame, stamped ``t_ms`` (milliseconds on any clock; events carry it)."""
        if self._first_voiced_ms >= 0:
            self._elapsed_ms += FRAME_MS
        if voiced:
            if self._first_voiced_ms < 0:
                self._first_voiced_ms = t_ms
                self._elapsed_ms = 0
            self._last_voiced_ms = t_ms
            self._speech_ms += FRAME_MS
            self._silence_ms = 0
            self._stt_final = False  # the caller went on: that end was not the end
        else:
            self._silence_ms += FRAME_MS
            if self.state is TurnState.LISTENING and self._silence_ms > _ONSET_GAP_MS:
                self._reset_run()
        rule = self._rule()
        if rule is None:
            return None
        return self._apply(rule, t_ms)

    def stt_final(self) -> bool:
        """The recogniser says the utterance has ended. Counts only inside a turn while the
        caller is silent (a late result about a pause they have talked through is ignored);
        returns whether it was taken. The turn ends at the next frame past the floor."""
        if self.state is not TurnState.SPEAKING or self._silence_ms == 0:
            return False
        self._stt_final = True
        return True

    def reset(self) -> None:
        """Forget any speech in progress (e.g. after the call's state changed)."""
        self.state = TurnState.LISTENING
        self._reset_run()

    def _rule(self) -> Rule | None:
        cfg = self._cfg
        if self.state is TurnState.LISTENING:
            return Rule.SPEECH_ONSET if self._speech_ms >= cfg.min_speech_ms else None
        if self._elapsed_ms >= cfg.max_turn_ms:
            return Rule.MAX_TURN
        held_back = self.agent_speaking and not self._bargein_sent  # not the caller's turn yet
        if self._silence_ms >= cfg.silence_ms(self.patience):
            return Rule.DROP_BACKCHANNEL if held_back else Rule.END_OF_TURN
        if (
            self._stt_final
            and not held_back
            and self._silence_ms >= cfg.stt_floor_ms(self.patience)
        ):
            return Rule.STT_FINAL
        if held_back and self._speech_ms >= cfg.bargein_min_speech_ms:
            return Rule.BARGE_IN
        return None

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
        self._reset_run()
        if rule is Rule.DROP_BACKCHANNEL:
            return SpeechDropped(first_voiced_ms=first, last_voiced_ms=last)
        return TurnEnded(
            first_voiced_ms=first,
            last_voiced_ms=last,
            at_ms=t_ms + FRAME_MS,
            forced=rule is Rule.MAX_TURN,
            reason=_END_REASON[rule],
            patience=self.patience,
        )

    def _reset_run(self) -> None:
        self._speech_ms = 0
        self._silence_ms = 0
        self._elapsed_ms = 0
        self._first_voiced_ms = -1
        self._last_voiced_ms = -1
        self._bargein_sent = False
        self._stt_final = False
