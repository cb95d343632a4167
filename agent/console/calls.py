"""The calls page (``/``, live) and one call (``/calls/{sid}``): transcript, latency, path."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from slotline.agent.config import Settings
from slotline.agent.console.auth import require_page
from slotline.agent.console.charts import flow_svg, turn_waterfall
from slotline.agent.console.data import (
    DIRECTIONS,
    STATUSES,
    CallFilter,
    CallRow,
    call_detail,
    call_rows,
    row_from_json,
)
from slotline.agent.console.layout import badge, definition_list, h, page, table
from slotline.agent.console.pages import read_flows
from slotline.agent.flow.model import Flow
from slotline.agent.server.app import CONTEXT

CALL_COLUMNS = ("Started", "Direction", "Caller", "Flow", "Duration", "Status", "Booking")


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def booking_links(ids: tuple[str, ...]) -> str:
    return " ".join(f'<a href="/bookings/{quote(b, safe="")}">{h(b[:12])}</a>' for b in ids) \
        or '<span class="muted">—</span>'


def call_row_html(row: CallRow, now: datetime) -> str:
    """One row of the calls table; the live updates send the same HTML."""
    who = " · ".join(part for part in (row.name, row.phone) if part) or "—"
    return (f'<tr data-sid="{h(row.sid)}">'
            f'<td><a href="/calls/{quote(row.sid, safe="")}">'
            f'{h(row.started_at.strftime("%Y-%m-%d %H:%M:%S"))}</a></td>'
            f'<td>{h(row.direction)}</td><td>{h(who)}</td><td>{h(row.flow)}</td>'
            f'<td>{duration_text(row.duration_s(now))}</td><td>{badge(row.status)}</td>'
            f'<td>{booking_links(row.bookings)}</td></tr>')


def _options(name: str, values: tuple[str, ...], chosen: str) -> str:
    options = [f'<option value=""{"" if chosen else " selected"}>any</option>']
    options += [f'<option value="{h(v)}"{" selected" if v == chosen else ""}>{h(v)}</option>'
                for v in values]
    return f'<label>{h(name)}<select name="{h(name)}">{"".join(options)}</select></label>'


async def calls_page(request: web.Request) -> web.Response:
    require_page(request)
    wanted = CallFilter.from_query(request.query)
    rows = await call_rows(request.app[CONTEXT].deps, wanted)
    now = datetime.now(UTC)
    filters = (f'<form class="filters" method="get" action="/">'
               f'{_options("status", STATUSES, wanted.status)}'
               f'{_options("direction", DIRECTIONS, wanted.direction)}'
               f'<label>number or name<input type="search" name="q" value="{h(wanted.query)}">'
               f'</label><button type="submit">Filter</button>'
               f'<span id="live">connecting</span></form>')
    body = table(CALL_COLUMNS, [call_row_html(r, now) for r in rows], body_id="calls",
                 empty="no calls yet")
    body = body.replace('<tbody id="calls">', '<tbody id="calls" data-live="1">', 1)
    return page("Calls", filters + body, active="/")


def _turn_html(index: int, turn: Mapping[str, Any]) -> str:
    role = "agent" if turn.get("role") == "agent" else "caller"
    text = str(turn.get("text", ""))
    classes = f"bubble {role}" + (" interrupted" if turn.get("interrupted") else "")
    heard = turn.get("heard_text")
    if turn.get("interrupted") and isinstance(heard, str):
        unheard = text[len(heard):] if text.startswith(heard) else ""
        said = (f'<span class="heard">{h(heard)}</span>'
                + (f'<span class="unheard">{h(unheard)}</span>' if unheard else ""))
        note = '<div class="note">interrupted: the caller heard only the first part</div>'
    else:
        said = h(text)
        note = '<div class="note">interrupted</div>' if turn.get("interrupted") else ""
    extras = [label for key, label in (("filler", "filler"), ("cached_audio", "cached audio"))
              if turn.get(key)]
    latency = turn.get("latency")
    if isinstance(latency, Mapping) and latency.get("turn_latency_ms") is not None:
        extras.append(f"{float(latency['turn_latency_ms']):.0f} ms")
    if turn.get("ended_by"):
        extras.append(f"ended by {turn['ended_by']}")
    meta = f" · {h(', '.join(extras))}" if extras else ""
    return (f'<div class="{classes}"><div class="who">#{index} {role}{meta}</div>'
            f'<div>{said}</div>{note}</div>')


def _bookings_table(detail_bookings: tuple[Any, ...]) -> str:
    rows = [f'<tr><td><a href="/bookings/{quote(b.id, safe="")}">{h(b.id)}</a></td>'
            f'<td>{h(b.start.isoformat())}</td><td>{h(b.calendar)}</td>'
            f'<td>{h(b.attendee.name)}</td><td>{badge(b.status)}</td></tr>'
            for b in detail_bookings]
    return table(("Booking", "Start", "Calendar", "Attendee", "Status"), rows,
                 empty="no booking on this call")


async def _flow_named(settings: Settings, name: str) -> Flow | None:
    """The flow the /flows page shows by that name (None: gone, renamed or now invalid)."""
    views = await asyncio.to_thread(read_flows, settings)  # reads and parses files
    return next((v.flow for v in views if v.flow is not None and v.name == name), None)


def path_html(path: list[str], dropped: int, flow: Flow | None, flow_name: str) -> str:
    """The call's path drawn on its flow's graph (arrow n leads from step n to step n + 1),
    then listed; the list alone when the flow cannot be drawn."""
    if not path:
        return '<h2>Path through the flow</h2><p class="muted">no node entered yet</p>'
    graph = (f'<div class="graph" id="flow-path">{flow_svg(flow, path)}</div>' if flow
             else f'<p class="muted">the flow {h(flow_name)} is not among this server\'s flows '
                  f'now; the path alone:</p>')
    more = f'<p class="muted">and {dropped} more nodes, not kept</p>' if dropped else ""
    steps = "".join(f"<li>{h(node)}</li>" for node in path)
    return (f'<h2>Path through the flow</h2>{graph}<ol class="path" id="path">{steps}</ol>'
            f'{more}')


async def call_page(request: web.Request) -> web.Response:
    require_page(request)
    sid = request.match_info["call_sid"]
    detail = await call_detail(request.app[CONTEXT].deps, sid)
    if detail is None:
        raise web.HTTPNotFound(text="no such call")
    call = detail.call
    row = row_from_json(call, tuple(b.id for b in detail.bookings))
    turns = [t for t in call.get("turns") or () if isinstance(t, Mapping)]
    facts: list[tuple[str, object]] = [
        ("call", row.sid), ("status", row.status), ("direction", row.direction),
        ("flow", row.flow), ("caller", " · ".join(p for p in (row.name, row.phone) if p) or "—"),
        ("started", row.started_at.isoformat()),
        ("ended", row.ended_at.isoformat() if row.ended_at else "—"),
        ("duration", duration_text(row.duration_s(datetime.now(UTC)))),
        ("last node", row.node or "—"),
    ]
    if call.get("campaign_id"):
        facts.append(("campaign", call["campaign_id"]))
    parts = [definition_list(facts)]
    if detail.recorded:
        parts.append(f'<h2>Recording</h2><audio controls preload="none" '
                     f'src="/api/calls/{quote(sid, safe="")}/recording"></audio>')
    chat = "".join(_turn_html(i, t) for i, t in enumerate(turns, start=1))
    parts.append(f'<h2>Transcript</h2><div class="chat" id="transcript">'
                 f'{chat or "<p class=muted>no turns yet</p>"}</div>')
    parts.append(f'<h2>Latency</h2><div class="charts" id="waterfall">{turn_waterfall(turns)}'
                 f'</div>')
    path = [str(node) for node in call.get("path") or ()]
    flow = await _flow_named(request.app[CONTEXT].settings, row.flow) if path else None
    parts.append(path_html(path, int(call.get("path_dropped") or 0), flow, row.flow))
    variables = call.get("variables") or {}
    parts.append("<h2>Variables</h2>" + definition_list(sorted(variables.items())))
    parts.append("<h2>Bookings</h2>" + _bookings_table(detail.bookings))
    errors = [e for e in call.get("errors") or () if isinstance(e, Mapping)]
    error_rows = [f'<tr><td>{h(e.get("at"))}</td><td>{h(e.get("provider"))}</td>'
                  f'<td>{h(e.get("message"))}</td></tr>' for e in errors]
    parts.append("<h2>Errors</h2>" + table(("At", "Where", "Message"), error_rows,
                                           empty="no errors"))
    if call.get("dtmf"):
        parts.append(f'<h2>Keypresses</h2><p class="path">{h(" ".join(call["dtmf"]))}</p>')
    return page(f"Call {sid}", "".join(parts), active="/")
