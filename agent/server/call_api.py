"""``GET /api/calls`` and ``GET /api/calls/{call_sid}``: the call log as JSON, one shape.

The list comes from the store, where every call is written as it goes (``agent.call.persist``):
live calls of every worker and the calls of earlier runs, newest first, the same from whichever
worker answers. One call is read from this process's memory when it is live here or just ended
(the freshest copy: the store catches up at the next write), else from the store. Both go
through ``StoredCall`` (``agent.store.records``), so a call has one JSON shape and one time
format wherever it was read. Without a store (a server run on memory only) both come from the
in-memory call log.
"""

from __future__ import annotations

from typing import Any

from slotline.agent.call.session import SessionDeps
from slotline.agent.store.records import StoredCall


async def calls_json(deps: SessionDeps, limit: int, offset: int) -> dict[str, Any]:
    """``GET /api/calls``: ``{"calls": [summary, ...]}``, newest first."""
    if deps.store is not None:
        calls = await deps.store.calls.recent(limit, offset)
    else:
        newest_first = reversed(deps.call_log.all())
        calls = [StoredCall.from_record(record) for record in newest_first][offset:offset + limit]
    return {"calls": [call.summary_json() for call in calls]}


async def call_json(deps: SessionDeps, call_sid: str) -> dict[str, Any] | None:
    """``GET /api/calls/{call_sid}`` (None: no such call), with its outbound attempt if it had
    one; a placed call not answered (yet) is its attempt alone. A live inbound call is read
    from memory alone: it has no attempt (the dialer places those) and no recording yet (one
    is saved when the call ends), so a console or a script polling it costs no store query."""
    record = deps.call_log.get(call_sid)
    store = deps.store
    call: StoredCall | None = None
    if record is not None:
        call = StoredCall.from_record(record)
    elif store is not None:
        call = await store.calls.get(call_sid)
    inbound = record is not None and record.direction == "inbound"
    attempt = await store.attempts.by_sid(call_sid) if store is not None and not inbound else None
    if call is None and attempt is not None:  # placed, not answered (yet): the same shape
        call = StoredCall(call_sid=call_sid, flow=attempt.flow, status=attempt.status,
                          started_at=attempt.started_at, direction="outbound",
                          campaign_id=attempt.campaign_id, contact_id=attempt.contact_id,
                          phone=attempt.phone)
    if call is None:
        return None
    body = call.as_json()
    if attempt is not None:
        body["outbound"] = attempt.as_json()
    live = record is not None and record.ended_at is None
    if (deps.recordings is not None and not live
            and await deps.recordings.path_of(call_sid) is not None):
        body["recording"] = f"/api/calls/{call_sid}/recording"
    return body
