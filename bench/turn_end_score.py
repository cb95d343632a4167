"""Scoring the turn-end set (sans-I/O): what the caller sent, what came back, and when.

Inputs are times on the harness's monotonic clock: when each clip's first sample went out, when
agent audio and ``clear`` messages arrived, and when the server logged each caller turn (its
call log stamps a caller turn once the turn has ended and its words are in, so the stamp is a
little after the server decided the turn was over).

* An **answer** was cut off when the server ended the caller's turn before the labelled end:
  agent audio arrived while the clip was still being said, a caller turn was logged before the
  clip's end, or the one answer was logged as two or more turns. The pause reported is the
  last internal pause that had begun when the first sign arrived.
* An **event over the agent** stopped the agent when a ``clear`` arrived between the event's
  start and ``STOP_GRACE_S`` after its end (a recogniser may need that long to decide). For a
  non-interruption that is a false stop; for an interruption it is the wanted outcome, and
  its barge-in latency is the caller's first voiced frame → ``clear``. An event the agent was
  not talking over any more is not counted.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.turn_end_clips import Clip

STOP_GRACE_S = 1.5
PAUSE_BUCKETS_MS = ((300, 500), (500, 700), (700, 901))

# The question an agent line asks, by the words of the demo flow's prompts and re-prompts.
PROMPT_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("phone", ("phone number",)),
    ("email", ("email",)),
    ("name", ("your name",)),
    ("date", ("what day", "which day")),
    ("time", ("what time",)),
    ("yes_no", ("shall i",)),
    ("choice", ("which works best", "which one would you like")),  # offers: no free slot
)


def asked_kind(agent_text: str) -> str:
    """The extractor kind the agent line asks for ("?" when it asks none we know)."""
    lowered = agent_text.lower()
    for kind, needles in PROMPT_KINDS:
        if any(needle in lowered for needle in needles):
            return kind
    return "?"


@dataclass(frozen=True, slots=True)
class Heard:
    """A caller turn as the server logged it."""

    at_s: float  # monotonic (converted from the call log's wall-clock stamp)
    text: str
    asked: str  # the kind of the agent's line before it
    ended_by: str | None = None
    patience: str | None = None
    question: str = ""  # the agent's line before it


@dataclass(frozen=True, slots=True)
class Sent:
    """A clip as the simulated caller sent it."""

    clip: Clip
    start_s: float  # monotonic: its first sample went out
    turn_latency_ms: float | None = None  # caller's last voiced frame → first agent audio
    bargein_ms: float | None = None  # events: caller's first voiced frame → clear
    over_agent: bool = False  # started while agent audio was playing


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    clip: str
    kind: str  # what the clip answers
    asked: str  # the question it was heard with ("?" when the server logged nothing)
    question: str  # that question's words
    patience: str | None
    pauses_ms: tuple[int, ...]
    cut_off: bool
    evidence: str  # "", "agent audio", "turn logged", "two turns"
    cut_in_pause_ms: int | None  # the pause the turn ended in (its length)
    server_turns: int
    texts: tuple[str, ...]
    turn_latency_ms: float | None  # clean turns only
    logged_ms: tuple[float, ...] = ()  # when its turns were logged, from the clip's start
    first_audio_ms: float | None = None  # the first agent audio after the clip's start
    ended_by: tuple[str, ...] = ()  # what ended each of its turns, as the server logged it


@dataclass(frozen=True, slots=True)
class EventOutcome:
    clip: str
    kind: str  # backchannel | cough | noise | interruption
    interruption: bool
    over_agent: bool
    stopped: bool  # a clear came for it
    bargein_ms: float | None  # first voiced frame → clear
    became_turn: bool  # the server logged it as a caller turn
    resumed: bool = False  # the agent went on after the stop (a forgiven false interruption)
    silence_ms: float | None = None  # stopped: its clear → the agent's next audio (None: none)
    after_end_ms: float | None = None  # stopped: the event's labelled end → the next audio


def opened_s(sent: Sent) -> float:
    """When a clip's window for logged turns opens: the end of its first piece. No turn of
    this clip can have ended before (a turn ends on silence after speech), so a turn logged
    earlier is a late one of the clip before (a slow recogniser: the caller heard a filler
    and went on) and counts there. An answer's window closes where the next one's opens."""
    return sent.start_s + sent.clip.labels.pieces_ms[0][1] / 1000


def score_answer(sent: Sent, window_end_s: float, media_s: Iterable[float],
                 heard: Iterable[Heard]) -> AnswerOutcome:
    labels = sent.clip.labels
    start, end = sent.start_s, sent.start_s + labels.end_ms / 1000
    early_media = [t for t in media_s if start < t < end]
    mine = [h for h in heard if opened_s(sent) < h.at_s <= window_end_s]
    signs: list[tuple[float, str]] = []
    if early_media:
        signs.append((early_media[0], "agent audio"))
    if mine and mine[0].at_s < end:
        signs.append((mine[0].at_s, "turn logged"))
    if len(mine) >= 2:
        signs.append((mine[0].at_s, "two turns"))
    first = min(signs) if signs else None
    cut_pause = None
    if first is not None:
        begun = [b - a for a, b in labels.pauses_ms if start + a / 1000 < first[0]]
        cut_pause = begun[-1] if begun else None
    return AnswerOutcome(
        clip=sent.clip.id, kind=sent.clip.kind, asked=mine[0].asked if mine else "?",
        question=mine[0].question if mine else "",
        patience=mine[0].patience if mine else None,
        pauses_ms=tuple(b - a for a, b in labels.pauses_ms), cut_off=first is not None,
        evidence="" if first is None else first[1], cut_in_pause_ms=cut_pause,
        server_turns=len(mine), texts=tuple(h.text for h in mine),
        turn_latency_ms=None if first is not None else sent.turn_latency_ms,
        logged_ms=tuple(round((h.at_s - start) * 1000, 1) for h in mine),
        first_audio_ms=next((round((t - start) * 1000, 1) for t in media_s if t > start), None),
        ended_by=tuple(h.ended_by or "?" for h in mine),
    )


def score_event(sent: Sent, clears_s: Iterable[float], heard: Iterable[Heard], *,
                resumed: bool = False, media_s: Iterable[float] = ()) -> EventOutcome:
    labels = sent.clip.labels
    start = sent.start_s
    first_voiced = start + labels.pieces_ms[0][0] / 1000
    until = start + labels.end_ms / 1000 + STOP_GRACE_S
    clears = [t for t in clears_s if start <= t <= until]
    bargein = sent.bargein_ms
    if bargein is None and clears:
        bargein = (clears[0] - first_voiced) * 1000
    # a clear empties Twilio's buffer, so the next audio to arrive plays at once: the caller
    # hears silence from the clear until then (the pause a forgiven stop costs)
    after = [t for t in media_s if clears and t > clears[0]]
    silence = (min(after) - clears[0]) * 1000 if after else None
    after_end = (min(after) - start - labels.end_ms / 1000) * 1000 if after else None
    return EventOutcome(
        clip=sent.clip.id, kind=sent.clip.kind, interruption=bool(labels.interruption),
        over_agent=sent.over_agent, stopped=bool(clears),
        bargein_ms=bargein if clears else None,
        became_turn=any(h.at_s > start for h in heard), resumed=resumed and bool(clears),
        silence_ms=silence, after_end_ms=after_end,
    )


# --- summary --------------------------------------------------------------------------------

def pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100 * part / whole, 1)


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": None if not values else round(statistics.median(values), 1),
            "p95": quantile(values, 0.95)}


def summarise(answers: Sequence[AnswerOutcome], events: Sequence[EventOutcome]) -> dict[str, Any]:
    paused = [a for a in answers if a.pauses_ms]
    # heard with the question they answer: a slow server's filler can put the caller out of
    # step (the next answer said while the last is still being decoded); these are the fair set
    in_step = [a for a in answers if a.asked == a.kind]
    by_kind: dict[str, list[AnswerOutcome]] = defaultdict(list)
    by_template: dict[str, list[AnswerOutcome]] = defaultdict(list)
    for answer in answers:
        by_kind[answer.kind].append(answer)
        by_template[answer.clip.split("/")[1]].append(answer)
    buckets = []
    for low, high in PAUSE_BUCKETS_MS:
        seen = sum(low <= p < high for a in answers for p in a.pauses_ms)
        cut = sum(a.cut_in_pause_ms is not None and low <= a.cut_in_pause_ms < high
                  for a in answers)
        buckets.append({"pause_ms": f"{low}-{min(high, 900)}", "pauses": seen, "cut": cut,
                        "cut_pct": pct(cut, seen)})
    counted = [e for e in events if e.over_agent]
    false = [e for e in counted if not e.interruption]
    real = [e for e in counted if e.interruption]
    by_event: dict[str, list[EventOutcome]] = defaultdict(list)
    for event in false:
        by_event[event.kind].append(event)
    return {
        "cut_off": {
            "turns": len(answers), "cut": sum(a.cut_off for a in answers),
            "pct": pct(sum(a.cut_off for a in answers), len(answers)),
            "in_step": {"turns": len(in_step), "cut": sum(a.cut_off for a in in_step),
                        "pct": pct(sum(a.cut_off for a in in_step), len(in_step))},
            "turns_with_pauses": len(paused),
            "pct_of_turns_with_pauses": pct(sum(a.cut_off for a in paused), len(paused)),
            "by_kind": {k: {"turns": len(v), "cut": sum(a.cut_off for a in v),
                            "pct": pct(sum(a.cut_off for a in v), len(v))}
                        for k, v in sorted(by_kind.items())},
            "by_template": {k: {"turns": len(v), "cut": sum(a.cut_off for a in v)}
                            for k, v in sorted(by_template.items())},
            "by_pause": buckets,
            "evidence": dict(Counter(a.evidence for a in answers if a.cut_off)),
            "heard_with_another_question": sum(a.asked not in (a.kind, "?") for a in answers
                                               if a.kind != "intent"),
        },
        "false_stop": {
            "events": len(false), "stopped": sum(e.stopped for e in false),
            "pct": pct(sum(e.stopped for e in false), len(false)),
            "by_kind": {k: {"events": len(v), "stopped": sum(e.stopped for e in v),
                            "pct": pct(sum(e.stopped for e in v), len(v))}
                        for k, v in sorted(by_event.items())},
            "became_turn": sum(e.became_turn for e in false),
            "stopped_then_resumed": sum(e.resumed for e in false),
            # what a stop cost the caller: the reply lost, or a pause before it went on
            "lost": sum(e.stopped and not e.resumed for e in false),
            "silence_after_stop_ms": _spread([e.silence_ms for e in false
                                              if e.resumed and e.silence_ms is not None]),
            # of that silence, how much came after the caller's sound had ended
            "resumed_after_end_ms": _spread([e.after_end_ms for e in false
                                             if e.resumed and e.after_end_ms is not None]),
            "not_over_agent": sum(not e.over_agent for e in events),
        },
        "interruptions": {
            "events": len(real), "stopped": sum(e.stopped for e in real),
            "missed": sum(not e.stopped for e in real),
            "bargein_ms": _spread([e.bargein_ms for e in real if e.bargein_ms is not None]),
        },
        "turn_latency_ms": {k: _spread([a.turn_latency_ms for a in v
                                        if a.turn_latency_ms is not None])
                            for k, v in sorted(by_kind.items())},
    }


def outcome_rows(outcomes: Iterable[AnswerOutcome | EventOutcome]) -> list[dict[str, Any]]:
    return [asdict(o) for o in outcomes]


def _f(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.0f}{unit}" if unit == " ms" else f"{value}{unit}"


def table(summary: dict[str, Any]) -> str:
    """The summary as the lines ``python -m bench.turn_end_set`` prints."""
    cut, stop, inter = summary["cut_off"], summary["false_stop"], summary["interruptions"]
    lines = [
        f"{'callers cut off (goal <= 2 %)':<44} {cut['cut']:>3} of {cut['turns']:<3} turns "
        f"{_f(cut['pct'], ' %'):>7}   (of turns with pauses: "
        f"{_f(cut['pct_of_turns_with_pauses'], ' %')})",
        f"  heard with the question they answer: {cut['in_step']['cut']} of "
        f"{cut['in_step']['turns']} cut ({_f(cut['in_step']['pct'], ' %')})",
    ]
    for kind, row in cut["by_kind"].items():
        lat = summary["turn_latency_ms"][kind]
        lines.append(f"  {kind:<12} cut {row['cut']:>2}/{row['turns']:<3}"
                     f"   turn latency p50 {_f(lat['p50'], ' ms'):>7} p95 "
                     f"{_f(lat['p95'], ' ms'):>7} (n={lat['n']})")
    for bucket in cut["by_pause"]:
        lines.append(f"  pause {bucket['pause_ms']:<8} ms: turn ended in {bucket['cut']:>2} of "
                     f"{bucket['pauses']} pauses")
    lines += [
        f"  heard with another question than the clip answers: "
        f"{cut['heard_with_another_question']}",
        f"{'agent stopped by a non-interruption (<= 5 %)':<44} {stop['stopped']:>3} of "
        f"{stop['events']:<3} events {_f(stop['pct'], ' %'):>6}",
    ]
    for kind, row in stop["by_kind"].items():
        lines.append(f"  {kind:<12} stopped {row['stopped']:>2}/{row['events']}")
    lines.append(f"  stopped, then resumed: {stop['stopped_then_resumed']}; logged as a caller "
                 f"turn: {stop['became_turn']}; not over the agent (not counted): "
                 f"{stop['not_over_agent']}")
    silence = stop["silence_after_stop_ms"]
    after_end = stop["resumed_after_end_ms"]
    lines.append(f"  replies lost: {stop['lost']}; silence before a resumed reply went on: p50 "
                 f"{_f(silence['p50'], ' ms')} p95 {_f(silence['p95'], ' ms')}; after the "
                 f"caller's sound ended: p50 {_f(after_end['p50'], ' ms')} p95 "
                 f"{_f(after_end['p95'], ' ms')}")
    bargein = inter["bargein_ms"]
    lines.append(f"{'real interruptions stopped the agent':<44} {inter['stopped']:>3} of "
                 f"{inter['events']:<3}   barge-in p50 {_f(bargein['p50'], ' ms')} p95 "
                 f"{_f(bargein['p95'], ' ms')}")
    return "\n".join(lines)
