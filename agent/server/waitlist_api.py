"""``/api/waitlist``: the waitlist over HTTP, under the same bearer token as every ``/api`` route.

- ``GET /api/waitlist[?action=&limit=&offset=]`` → ``{"waitlist": [entry, ...]}``, oldest first;
  each entry with where its ``waitlist.added`` event stands: ``webhook_status`` (``pending``,
  ``sent``, ``failed: <reason>``, ``off``) and ``webhook`` (``state``, ``attempts``,
  ``next_attempt_at``, ``last_error``, ``delivered_at``, ``failed_at``; null when off);
- ``POST /api/waitlist`` ``{"action", "name", "phone", "email", "timezone", "preference",
  "notes"}`` (a phone number or an e-mail required; the phone in E.164) → 201 and the entry; the
  ``waitlist.added`` event is queued as for a caller (``agent.waitlist``);
- ``DELETE /api/waitlist/{id}`` → 204 (its event too, if not yet sent), or 404 when there is
  no such entry.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from slotline.agent.server.app import api_guard
from slotline.agent.store import Store
from slotline.agent.store.waitlist import NewWaitlistEntry
from slotline.agent.waitlist import Waitlist, WaitlistEvents

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_TEXT_FIELDS = ("action", "name", "phone", "email", "timezone", "preference", "notes")
_MAX_CHARS = 500
_MAX_LIMIT = 1000


class WaitlistApi:
    def __init__(self, store: Store, events: WaitlistEvents) -> None:
        self.waitlist = Waitlist(store, events)
        self.store = store


WAITLIST_API: web.AppKey[WaitlistApi] = web.AppKey("slotline_waitlist_api", WaitlistApi)


def add_routes(app: web.Application, api: WaitlistApi) -> None:
    app[WAITLIST_API] = api
    guarded = api_guard(WAITLIST_API)
    app.add_routes([
        web.get("/api/waitlist", guarded(_list)),
        web.post("/api/waitlist", guarded(_add)),
        web.delete("/api/waitlist/{entry_id}", guarded(_remove)),
    ])


def _int(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit():
        raise web.HTTPBadRequest(text=f"{name} must be a whole number")
    return min(int(raw), most)


async def _list(request: web.Request, api: WaitlistApi) -> web.Response:
    entries = await api.store.waitlist.entries(
        action=request.query.get("action"),
        limit=_int(request, "limit", 100, _MAX_LIMIT),
        offset=_int(request, "offset", 0, 10**9),
    )
    return web.json_response({"waitlist": [entry.as_json() for entry in entries]})


def _fields(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    unknown = sorted(set(body) - set(_TEXT_FIELDS))
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown field(s): {', '.join(unknown)}")
    fields: dict[str, str] = {}
    for name in _TEXT_FIELDS:
        value = body.get(name, "")
        if not isinstance(value, str) or len(value) > _MAX_CHARS:
            raise web.HTTPBadRequest(text=f"{name} must be text of at most {_MAX_CHARS} chars")
        fields[name] = value.strip()
    if not (fields["phone"] or fields["email"]):
        raise web.HTTPBadRequest(text="give phone or email: how the business reaches them")
    if fields["phone"] and not _E164.match(fields["phone"]):
        raise web.HTTPBadRequest(text="phone must be E.164, like +15551234567")
    if fields["email"] and "@" not in fields["email"]:
        raise web.HTTPBadRequest(text="email is not an e-mail address")
    return fields


async def _add(request: web.Request, api: WaitlistApi) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON") from None
    entry, _ = await api.waitlist.add(NewWaitlistEntry(**_fields(body), source="api"))
    return web.json_response(entry.as_json(), status=201)


async def _remove(request: web.Request, api: WaitlistApi) -> web.Response:
    if not await api.store.waitlist.remove(request.match_info["entry_id"]):
        raise web.HTTPNotFound(text="no such waitlist entry")
    return web.Response(status=204)
