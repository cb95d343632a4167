"""The console's other pages: bookings, campaigns, flows and the store-wide plots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from slotline.agent.config import Settings
from slotline.agent.console.auth import require_page
from slotline.agent.console.charts import flow_svg, stats_charts
from slotline.agent.console.layout import badge, definition_list, h, page, table
from slotline.agent.flow.model import Flow
from slotline.agent.flow.table import edges
from slotline.agent.flow.validate import FlowInvalid, llm_warnings, read_flow_file, validate
from slotline.agent.server.app import CONTEXT
from slotline.agent.store import Store
from slotline.agent.store.records import BookingRecord

STATS_CALLS = 5000  # the plots read at most this many recent calls


def _store(request: web.Request) -> Store:
    store = request.app[CONTEXT].deps.store
    if store is None:
        raise web.HTTPNotFound(text="this server keeps no store")
    return store


def _booking_row(b: BookingRecord) -> str:
    call = (f'<a href="/calls/{quote(b.call_sid, safe="")}">{h(b.call_sid[:14])}</a>'
            if b.call_sid else "—")
    return (f'<tr><td><a href="/bookings/{quote(b.id, safe="")}">{h(b.id)}</a></td>'
            f'<td>{h(b.start.strftime("%Y-%m-%d %H:%M"))} UTC</td><td>{h(b.attendee.name)}</td>'
            f'<td>{h(b.attendee.phone)}</td><td>{h(b.calendar)}</td><td>{h(b.provider)}</td>'
            f'<td>{badge(b.status)}</td><td>{call}</td></tr>')


async def bookings_page(request: web.Request) -> web.Response:
    require_page(request)
    found = await _store(request).bookings.recent(200)
    body = table(("Booking", "Start", "Name", "Phone", "Calendar", "Provider", "Status", "Call"),
                 [_booking_row(b) for b in found], body_id="bookings", empty="no bookings yet")
    return page("Bookings", body, active="/bookings")


async def booking_page(request: web.Request) -> web.Response:
    require_page(request)
    b = await _store(request).bookings.get(request.match_info["booking_id"])
    if b is None:
        raise web.HTTPNotFound(text="no such booking")
    facts: list[tuple[str, object]] = [
        ("booking", b.id), ("status", b.status), ("start", b.start.isoformat()),
        ("end", b.end.isoformat()), ("calendar", b.calendar), ("provider", b.provider),
        ("provider's id", b.provider_booking_id or "—"), ("action", b.action or "—"),
        ("name", b.attendee.name), ("phone", b.attendee.phone), ("e-mail", b.attendee.email),
        ("time zone", b.attendee.timezone), ("created", b.created_at.isoformat()),
        ("updated", b.updated_at.isoformat()),
    ]
    call = (f'<p><a href="/calls/{quote(b.call_sid, safe="")}">the call that booked it</a></p>'
            if b.call_sid else "")
    fields = "<h2>Fields</h2>" + definition_list(sorted(b.fields.items()))
    return page(f"Booking {b.id}", definition_list(facts) + call + fields, active="/bookings")


async def campaigns_page(request: web.Request) -> web.Response:
    require_page(request)
    from slotline.agent.dialer.campaigns import campaign_json

    store = _store(request)
    can_control = request.app[CONTEXT].deps.dialer is not None
    now = datetime.now(UTC)
    rows = []
    for campaign in (await store.campaigns.all())[:200]:
        body = await campaign_json(store, campaign, full=False, now=now)
        progress, counts = body["progress"], body["counts"]
        outcome = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "—"
        cid = quote(campaign.id, safe="")
        actions = []
        if can_control:
            actions.append(f'<a href="/api/campaigns/{cid}/results.csv">results.csv</a>')
            verb = {"running": "pause", "paused": "resume"}.get(campaign.status)
            if verb:
                actions.append(f'<button type="button" data-campaign="{h(campaign.id)}" '
                               f'data-verb="{verb}">{verb}</button>')
        rows.append(f'<tr><td>{h(campaign.name or campaign.id)}<div class="muted">'
                    f'{h(campaign.id)}</div></td><td>{h(campaign.flow)}</td>'
                    f'<td>{badge(campaign.status)}</td>'
                    f'<td>{progress["dialed"]} dialled / {progress["contacts"]} contacts, '
                    f'{progress["answered"]} answered, {progress["remaining"]} left</td>'
                    f'<td>{h(outcome)}</td><td>{" ".join(actions)}</td></tr>')
    body_html = table(("Campaign", "Flow", "Status", "Progress", "Outcomes", ""), rows,
                      body_id="campaigns", empty="no campaigns yet")
    return page("Campaigns", body_html, active="/campaigns")


@dataclass(frozen=True, slots=True)
class FlowView:
    name: str
    path: Path
    flow: Flow | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


def flow_files(settings: Settings) -> list[Path]:
    """The configured flow and every flow in its folder (the ones a call may ask for)."""
    from slotline.agent.server.wiring import flow_path

    current = flow_path(settings.flow)
    return sorted({current, *current.parent.glob("*.yaml")})


def read_flows(settings: Settings) -> list[FlowView]:
    views = []
    actions = tuple(settings.booking_actions)
    for path in flow_files(settings):
        try:
            document = read_flow_file(path)
        except FlowInvalid as exc:
            views.append(FlowView(path.stem, path, None, tuple(map(str, exc.problems)), ()))
            continue
        problems = validate(document, booking_actions=actions, source=path.name)
        if problems:
            views.append(FlowView(path.stem, path, None, tuple(map(str, problems)), ()))
            continue
        flow = Flow.model_validate(document)
        warnings = tuple(str(w) for w in llm_warnings(flow, path.name))
        views.append(FlowView(flow.name, path, flow, (), warnings))
    return views


def _flow_html(view: FlowView, current: bool) -> str:
    title = h(view.name) + (' <span class="badge live">default</span>' if current else "")
    parts = [f'<h2 id="flow-{h(view.name)}">{title}</h2><p class="muted">{h(view.path.name)}</p>']
    if view.problems:
        items = "".join(f"<li>{h(p)}</li>" for p in view.problems)
        parts.append(f'<ul class="problems">{items}</ul>')
    if view.warnings:
        parts.append("<ul>" + "".join(f'<li class="muted">{h(w)}</li>' for w in view.warnings)
                     + "</ul>")
    if view.flow is not None:
        flow = view.flow
        parts.append(f'<div class="graph">{flow_svg(flow)}</div>')
        edge_rows = [f"<tr><td>{h(node_id)}</td><td>{h(node.type)}</td><td>{h(e.label)}</td>"
                     f"<td>{h(e.target)}</td></tr>"
                     for node_id, node in flow.nodes.items() for e in edges(node)]
        edge_rows += [f"<tr><td>any time</td><td>intent</td><td>"
                      f"{h(' / '.join(i.phrases or i.keywords))}</td><td>{h(i.goto)}</td></tr>"
                      for i in flow.intents]
        parts.append(table(("From", "Type", "When", "To"), edge_rows, empty="no edges"))
    return "".join(parts)


async def flows_page(request: web.Request) -> web.Response:
    require_page(request)
    settings = request.app[CONTEXT].settings
    views = await asyncio.to_thread(read_flows, settings)  # reads and parses files
    index = " · ".join(f'<a href="#flow-{h(v.name)}">{h(v.name)}</a>'
                       + (" ⚠" if v.problems else "") for v in views)
    body = f"<p>{index}</p>" + "".join(_flow_html(v, v.name == settings.flow) for v in views)
    return page("Flows", body, active="/flows")


async def stats_page(request: web.Request) -> web.Response:
    require_page(request)
    store = _store(request)
    stored = await store.calls.recent(STATS_CALLS)
    calls = [call.as_json() for call in stored]
    booked = {b.call_sid for b in await store.bookings.recent(STATS_CALLS) if b.call_sid}
    charts = stats_charts(calls, booked, datetime.now(UTC))
    summary = f'<p class="muted">from the {len(calls)} most recent calls in the store</p>'
    return page("Stats", summary + '<div class="charts">' + "".join(charts) + "</div>",
                active="/stats")
