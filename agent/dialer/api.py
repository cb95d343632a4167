"""``/api/calls`` (POST: one outbound call), ``/api/campaigns…`` and ``/api/dnc…``.

The routes are listed in the README ("HTTP surface"); every one is behind the API token like
the rest of ``/api``. A
campaign is created from JSON (``{"flow", "contacts": [...], …settings}``) or from a CSV body
(``text/csv``) with the settings as query parameters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import phonenumbers
from aiohttp import web

from slotline.agent.dialer.campaigns import campaign_json, create_campaign, results_csv
from slotline.agent.dialer.contacts import ContactList, ContactsError, parse_csv, parse_rows
from slotline.agent.dialer.engine import Dialer
from slotline.agent.dialer.spec import parse_spec, spec_from_query
from slotline.agent.logs import mask
from slotline.agent.server.app import api_guard
from slotline.agent.store import Store

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a 100,000-row contacts file with a few columns


@dataclass(frozen=True, slots=True)
class DialerApi:
    store: Store
    dialer: Dialer
    region: str = "US"


DIALER_API: web.AppKey[DialerApi] = web.AppKey("slotline_dialer_api", DialerApi)


def add_routes(app: web.Application, api: DialerApi) -> None:
    app[DIALER_API] = api
    guarded = api_guard(DIALER_API)
    app.add_routes([
        web.post("/api/calls", guarded(_place_call)),
        web.post("/api/campaigns", guarded(_create)),
        web.get("/api/campaigns", guarded(_list)),
        web.get("/api/campaigns/{id}", guarded(_show)),
        web.post("/api/campaigns/{id}/{verb:pause|resume|cancel}", guarded(_control)),
        web.get("/api/campaigns/{id}/results.csv", guarded(_results)),
        web.get("/api/dnc", guarded(_dnc_list)),
        web.post("/api/dnc", guarded(_dnc_add)),
        web.delete("/api/dnc/{phone}", guarded(_dnc_remove)),
    ])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}',
                                 content_type="application/json")
    return body


def _now() -> datetime:
    return datetime.now(UTC)


# ---- one call ---------------------------------------------------------------------------------


async def _place_call(request: web.Request, api: DialerApi) -> web.Response:
    body = await _json_body(request)
    flow, to, variables = body.get("flow", ""), body.get("to", ""), body.get("variables", {})
    if not isinstance(to, str) or not to:
        return _error(400, "'to' (the number to call) is required")
    if not isinstance(flow, str) or not flow or not api.dialer.flow_exists(flow):
        return _error(400, f"no flow named {flow!r}")
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) for k, v in variables.items()
    ):
        return _error(400, "'variables' must be an object of names to strings")
    phone = _e164(to, api.region)
    if phone is None:
        return _error(400, "'to' is not a phone number")
    if not api.dialer.can_dial:
        return _error(503, api.dialer.why_not())
    if await api.store.dnc.contains(phone):
        return _error(409, f"{mask(phone)} is on the do-not-call list")
    values = {str(k): str(v) for k, v in variables.items()}
    values.setdefault("user_phone", phone)
    attempt = await api.store.attempts.single(phone=phone, flow=flow, variables=values,
                                              worker="api")
    sid = await api.dialer.place(attempt)
    if sid is None:
        settled = await api.store.attempts.get(attempt.id)
        reason = settled.reason if settled is not None else "the call could not be placed"
        return _error(502, reason)
    return web.json_response({"call_sid": sid, "attempt_id": attempt.id}, status=201)


def _e164(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# ---- campaigns --------------------------------------------------------------------------------


async def _create(request: web.Request, api: DialerApi) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        return _error(413, f"a contacts upload is at most {MAX_UPLOAD_BYTES} bytes")
    try:
        if request.content_type in ("text/csv", "text/plain", "application/octet-stream"):
            settings = spec_from_query(request.query)
            spec = parse_spec(settings)
            # ~50 µs a row in phonenumbers: a big file is parsed off the event loop
            parsed = await asyncio.to_thread(parse_csv, await request.read(),
                                             default_region=spec.region,
                                             default_timezone=spec.timezone)
        else:
            body = await _json_body(request)
            contacts = body.pop("contacts", None)
            spec = parse_spec(body)
            if not isinstance(contacts, list) or not contacts:
                return _error(400, "'contacts' must be a non-empty list")
            parsed = await asyncio.to_thread(parse_rows, contacts, default_region=spec.region,
                                             default_timezone=spec.timezone)
    except (ValueError, ContactsError) as exc:
        return _error(400, str(exc))
    if not api.dialer.flow_exists(spec.flow):
        return _error(400, f"no flow named {spec.flow!r}")
    if not api.dialer.can_dial:
        return _error(503, api.dialer.why_not())
    campaign_id = await create_campaign(api.store, spec, parsed)
    api.dialer.wake()
    return web.json_response(_created(campaign_id, parsed), status=201)


def _created(campaign_id: str, parsed: ContactList) -> dict[str, Any]:
    return {
        "id": campaign_id,
        "contacts": len(parsed.contacts),
        "rejected": [{"line": r.line, "phone": r.phone, "reason": r.reason}
                     for r in parsed.rejected],
    }


async def _list(request: web.Request, api: DialerApi) -> web.Response:
    now = _now()
    campaigns = await api.store.campaigns.all()
    return web.json_response({"campaigns": [
        await campaign_json(api.store, c, full=False, now=now) for c in campaigns[:200]
    ]})


async def _show(request: web.Request, api: DialerApi) -> web.Response:
    campaign = await api.store.campaigns.get(request.match_info["id"])
    if campaign is None:
        return _error(404, "no such campaign")
    return web.json_response(await campaign_json(api.store, campaign, full=True, now=_now()))


_MOVES = {"pause": ("paused", ("running",)), "resume": ("running", ("paused",)),
          "cancel": ("cancelled", ("running", "paused"))}


async def _control(request: web.Request, api: DialerApi) -> web.Response:
    campaign_id, verb = request.match_info["id"], request.match_info["verb"]
    status, allowed = _MOVES[verb]
    if not await api.store.campaigns.set_status(campaign_id, status, allowed_from=allowed):
        campaign = await api.store.campaigns.get(campaign_id)
        if campaign is None:
            return _error(404, "no such campaign")
        return _error(409, f"cannot {verb} a campaign that is {campaign.status}")
    api.dialer.wake()
    return web.json_response({"id": campaign_id, "status": status})


async def _results(request: web.Request, api: DialerApi) -> web.Response:
    campaign_id = request.match_info["id"]
    if await api.store.campaigns.get(campaign_id) is None:
        return _error(404, "no such campaign")
    return web.Response(
        text=await results_csv(api.store, campaign_id), content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}.csv"'},
    )


# ---- do not call ------------------------------------------------------------------------------


async def _dnc_list(request: web.Request, api: DialerApi) -> web.Response:
    entries = await api.store.dnc.entries()
    return web.json_response({"entries": [e.as_json() for e in entries]})


async def _dnc_add(request: web.Request, api: DialerApi) -> web.Response:
    try:
        if request.content_type in ("text/csv", "text/plain"):
            parsed = parse_csv(await request.read(), default_region=api.region)
        else:
            body = await _json_body(request)
            phones = body.get("phones")
            if not isinstance(phones, list) or not phones:
                return _error(400, "'phones' must be a non-empty list of numbers")
            parsed = parse_rows([{"phone": p} for p in phones], default_region=api.region)
    except (ValueError, ContactsError) as exc:
        return _error(400, str(exc))
    rejected = [r for r in parsed.rejected if not r.reason.startswith("duplicate")]
    added = await api.store.dnc.add([c.phone for c in parsed.contacts], source="api")
    return web.json_response({"added": added, "rejected": [
        {"line": r.line, "phone": r.phone, "reason": r.reason} for r in rejected]})


async def _dnc_remove(request: web.Request, api: DialerApi) -> web.Response:
    phone = _e164(request.match_info["phone"], api.region)
    if phone is None or not await api.store.dnc.remove(phone):
        return _error(404, "not on the list")
    return web.json_response({"removed": phone})


__all__ = ["DIALER_API", "DialerApi", "add_routes"]
