"""Turn detection: a sans-I/O state machine fed one VAD decision per 20 ms frame.

It answers two questions for the call session: "has the caller finished their turn?" and "is
the caller interrupting the agent?". Every rule that moves state is in ``_TRANSITIONS``; the
detector only measures (voiced and silent run lengths) and looks rules up, so the behaviour can
be read, tested and drawn from the table alone.

    LISTENING ──speech ≥ min_speech_ms──▶ SPEAKING ──silence ≥ end_silence_ms──▶ LISTENING
                                            │          (or max_turn_s reached)     [TurnEnded]
                                            └─ agent talking and speech ≥ bargein_min_speech_ms
                                               ─▶ [BargeIn] (stays SPEAKING; the interruption
                                               becomes the caller's turn)

Speech shorter than ``min_speech_ms`` (a click, a cough) never starts a turn. While the agent is
talking, caller speech that ends before ``bargein_min_speech_ms`` (a backchannel such as
"uh-huh") is dropped without a turn: the agent goes on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

FRAME_MS = 20
# A gap this short inside speech is a stop consonant or a breath, not the start of silence
# that could reset a speech onset that has not reached min_speech_ms yet.
_ONSET_GAP_MS = 60


class TurnState(enum.Enum):
    LISTENING = "listening"
    SPEAKING = "speaking"


class Rule(enum.Enum):
    SPEECH_ONSET = "speech reached min_speech_ms"
    BARGE_IN = "agent talking and speech reached bargein_min_speech_ms"
    END_OF_TURN = "silence reached end_silence_ms"
    DROP_BACKCHANNEL = "agent talking, speech ended before bargein_min_speech_ms"
    MAX_TURN = "turn reached max_turn_s"


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
    forced: bool = False  # ended by max_turn_s, not by silence


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
    (TurnState.SPEAKING, Rule.DROP_BACKCHANNEL): TurnState.LISTENING,
    (TurnState.SPEAKING, Rule.MAX_TURN): TurnState.LISTENING,
}


def transition_table() -> list[tuple[str, str, str]]:
    """(from, rule, to) rows, for docs and diagrams."""
    return [(s.value, r.value, t.value) for (s, r), t in _TRANSITIONS.items()]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    min_speech_ms: int = 120
    end_silence_ms: int = 600
    bargein_min_speech_ms: int = 300
    max_turn_ms: int = 30_000


class TurnDetector:
    """Feed ``frame(voiced, t_ms)`` once per 20 ms frame; returns at most one event."""

    __slots__ = (
        "_bargein_sent",
        "_cfg",
        "_first_voiced_ms",
        "_last_voiced_ms",
        "_silence_ms",
        "_speech_ms",
        "agent_speaking",
        "state",
    )

    def __init__(self, config: TurnConfig) -> None:
        self._cfg = config
        self.state = TurnState.LISTENING
        self.agent_speaking = False
        self._speech_ms = 0
        self._silence_ms = 0
        self._first_voiced_ms = -1
        self._last_voiced_ms = -1
        self._bargein_sent = False

    def frame(self, voiced: bool, t_ms: int) -> TurnEvent | None:
        """One frame whose audio starts at ``t_ms`` (stream time)."""
        if voiced:
            if self._first_voiced_ms < 0:
                self._first_voiced_ms = t_ms
            self._last_voiced_ms = t_ms
            self._speech_ms += FRAME_MS
            self._silence_ms = 0
        else:
            self._silence_ms += FRAME_MS
            if self.state is TurnState.LISTENING and self._silence_ms > _ONSET_GAP_MS:
                self._reset_run()
        rule = self._rule(t_ms)
        if rule is None:
            return None
        return self._apply(rule, t_ms)

    def reset(self) -> None:
        """Forget any speech in progress (e.g. after the call's state changed)."""
        self.state = TurnState.LISTENING
        self._reset_run()

    def _rule(self, t_ms: int) -> Rule | None:
        cfg = self._cfg
        if self.state is TurnState.LISTENING:
            return Rule.SPEECH_ONSET if self._speech_ms >= cfg.min_speech_ms else None
        if t_ms - self._first_voiced_ms >= cfg.max_turn_ms:
            return Rule.MAX_TURN
        if self._silence_ms >= cfg.end_silence_ms:
            if self.agent_speaking and not self._bargein_sent:
                return Rule.DROP_BACKCHANNEL
            return Rule.END_OF_TURN
        if (
            self.agent_speaking
            and not self._bargein_sent
            and self._speech_ms >= cfg.bargein_min_speech_ms
        ):
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
        )

    def _reset_run(self) -> None:
        self._speech_ms = 0
        self._silence_ms = 0
        self._first_voiced_ms = -1
        self._last_voiced_ms = -1
        self._bargein_sent = False
