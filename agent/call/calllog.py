"""The call log: what happened on each call, readable while the call is in progress.

These are the shapes ``GET /api/calls/{call_sid}`` answers (README, "HTTP surface"); fields
may be added, never renamed. The store keeps every call, written as it goes
(``agent.call.persist``), and is what ``GET /api/calls`` lists; memory keeps only this process's
live calls and the few that ended last (``CallLog``), so a server that runs for months holds no
more than it did at noon.
Every time is UTC ISO-8601 with milliseconds and an offset (``iso``), in memory and from the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Per-call caps: a client that floods the media socket (bad frames, keypresses) or a call that
# never ends must not grow the record — nor the row it is stored as — without bound. The first
# ones are kept, the rest counted. A real call has a few digits and well under 500 turns.
MAX_ERRORS = 50
MAX_DTMF = 256
MAX_TURNS = 1000
MAX_PATH = 500  # nodes entered; a flow that loops (a retry edge back) may enter many
MAX_ERROR_CHARS = 300  # an error's message (details quote the wire)
# Ended calls kept in memory besides the live ones: enough for the console's page of a call that
# just ended and for the end-of-call hooks; everything older is read from the store.
RECENT_ENDED = 50


def iso(moment: datetime) -> str:
    """The one time format of the call log: ``2026-12-05T20:43:48.123+00:00``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def now_iso() -> str:
    return iso(datetime.now(UTC))


@dataclass(slots=True)
class Latency:
    turn_latency_ms: float = 0.0
    endpoint_ms: float = 0.0
    stt_final_ms: float = 0.0
    llm_ttft_ms: float = 0.0
    tts_ttfb_ms: float = 0.0
    server_overhead_ms: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "turn_latency_ms": round(self.turn_latency_ms, 1),
            "endpoint_ms": round(self.endpoint_ms, 1),
            "stt_final_ms": round(self.stt_final_ms, 1),
            "llm_ttft_ms": round(self.llm_ttft_ms, 1),
            "tts_ttfb_ms": round(self.tts_ttfb_ms, 1),
            "server_overhead_ms": round(self.server_overhead_ms, 1),
        }


@dataclass(slots=True)
class Turn:
    role: str  # "agent" | "caller"
    text: str
    started_at: str = field(default_factory=now_iso)
    interrupted: bool = False
    heard_text: str | None = None  # agent turns cut by barge-in: what reached the caller
    latency: Latency | None = None
    # agent turns
    cached_audio: bool = False  # some of its sentences played from the prompt cache
    filler: bool = False  # said by the session while the reply was slow to start
    resumed: int = 0  # false interruptions (noise) after which it went on
    # caller turns
    ended_by: str | None = None  # silence | stt_final | max_turn
    patience: str | None = None  # short | normal | long: the profile the turn was heard with

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "text": self.text,
            "started_at": self.started_at,
            "interrupted": self.interrupted,
        }
        if self.heard_text is not None:
            out["heard_text"] = self.heard_text
        if self.latency is not None:
            out["latency"] = self.latency.as_dict()
        if self.cached_audio:
            out["cached_audio"] = True
        if self.filler:
            out["filler"] = True
        if self.resumed:
            out["resumed"] = self.resumed
        if self.ended_by is not None:
            out["ended_by"] = self.ended_by
        if self.patience is not None:
            out["patience"] = self.patience
        return out


@dataclass(slots=True)
class CallRecord:
    call_sid: str
    stream_sid: str
    flow: str
    status: str = "in-progress"
    node: str = ""
    started_at: str = field(default_factory=now_iso)
    ended_at: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    bookings: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    errors_dropped: int = 0
    dtmf_dropped: int = 0
    turns_dropped: int = 0
    # every flow node entered, in order (the console draws it on the flow's graph); a node
    # entered twice is listed twice
    path: list[str] = field(default_factory=list)
    path_dropped: int = 0
    # the responder's use of the language model (``agent.flow.llm.LlmStats`` counts by name);
    # empty when the call had no model configured
    llm: dict[str, int] = field(default_factory=dict)
    direction: str = "inbound"  # outbound: placed by the dialer (the callee is in our seat)
    campaign_id: str = ""  # the outbound campaign and contact it dialled ("" for none)
    contact_id: str = ""
    phone: str = ""  # the other party: the caller, or an outbound call's callee
    # after the call (``agent.call.summary``): what came of it and a sentence or two saying so
    outcome: str = ""
    call_summary: str = ""  # "summary" in the JSON (``summary()`` is the list entry)

    def add_error(self, provider: str, message: str) -> None:
        """Keep the first ``MAX_ERRORS``; count the rest (a stream of bad frames must not grow
        the record without bound)."""
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"at": now_iso(), "provider": provider,
                                "message": message[:MAX_ERROR_CHARS]})
        else:
            self.errors_dropped += 1

    def add_bookings(self, booking_ids: Sequence[str]) -> None:
        """Add the ids not listed yet (a responder reports all its bookings every time)."""
        for booking_id in booking_ids:
            if booking_id and booking_id not in self.bookings:
                self.bookings.append(booking_id)

    def add_dtmf(self, digit: str) -> None:
        """Keep the first ``MAX_DTMF`` keypresses; count the rest."""
        if len(self.dtmf) < MAX_DTMF:
            self.dtmf.append(digit)
        else:
            self.dtmf_dropped += 1

    def add_turn(self, turn: Turn) -> None:
        """Keep the first ``MAX_TURNS`` turns; count the rest."""
        if len(self.turns) < MAX_TURNS:
            self.turns.append(turn)
        else:
            self.turns_dropped += 1

    def set_path(self, path: Sequence[str]) -> None:
        """The responder's whole path so far (it reports all of it every time): keep the first
        ``MAX_PATH`` nodes, count the rest."""
        self.path = list(path[:MAX_PATH])
        self.path_dropped = max(0, len(path) - MAX_PATH)

    def summary(self) -> dict[str, Any]:
        return {
            "call_sid": self.call_sid,
            "status": self.status,
            "flow": self.flow,
            "node": self.node,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "turns": len(self.turns),
            "errors": len(self.errors),
            "direction": self.direction,
            "campaign_id": self.campaign_id,
            "contact_id": self.contact_id,
            "phone": self.phone,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_sid": self.call_sid,
            "stream_sid": self.stream_sid,
            "status": self.status,
            "flow": self.flow,
            "node": self.node,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "variables": dict(self.variables),
            "turns": [t.as_dict() for t in self.turns],
            "bookings": list(self.bookings),
            "errors": list(self.errors),
            "dtmf": list(self.dtmf),
            "errors_dropped": self.errors_dropped,
            "dtmf_dropped": self.dtmf_dropped,
            "turns_dropped": self.turns_dropped,
            "path": list(self.path),
            "path_dropped": self.path_dropped,
            "llm": dict(self.llm),
            "direction": self.direction,
            "campaign_id": self.campaign_id,
            "contact_id": self.contact_id,
            "phone": self.phone,
            "outcome": self.outcome,
            "summary": self.call_summary,
        }


class CallLog:
    """This process's live calls and the last ``recent`` that ended here, oldest first.

    A live call is never dropped; an ended one (``ended_at`` set: the session's last act) is
    dropped once ``recent`` calls that ended after it are kept. What it answers the store has
    too: the window is for the call page and the end-of-call hooks of a call that just ended,
    and for a server run without a store.
    """

    def __init__(self, recent: int = RECENT_ENDED) -> None:
        self._recent = recent
        self._calls: OrderedDict[str, CallRecord] = OrderedDict()

    def add(self, record: CallRecord) -> None:
        self._calls[record.call_sid] = record
        self._trim()

    def get(self, call_sid: str) -> CallRecord | None:
        return self._calls.get(call_sid)

    def all(self) -> list[CallRecord]:
        self._trim()
        return list(self._calls.values())

    def __len__(self) -> int:
        return len(self._calls)

    def _trim(self) -> None:
        ended = [sid for sid, record in self._calls.items() if record.ended_at is not None]
        for sid in ended[:max(0, len(ended) - self._recent)]:
            del self._calls[sid]
