"""The operator console (issue 15): server-rendered pages at ``/`` behind the API token.

``add_console_routes(app)`` is the one call ``agent.server.app.build_app`` makes; everything else —
auth (``auth``), the calls pages and their live updates (``calls``, ``events``), bookings,
campaigns, flows and plots (``pages``), the shell, CSS and JS (``layout``) — lives here.
"""

from __future__ import annotations

from aiohttp import web

from slotline.agent.console import auth, calls, events, layout, pages


def add_console_routes(app: web.Application) -> None:
    hub = events.EventHub()
    app[events.HUB] = hub
    app.on_shutdown.append(hub.on_shutdown)
    app.middlewares.append(auth.api_with_session)
    app.add_routes([
        web.get("/", calls.calls_page),
        web.get("/calls/{call_sid}", calls.call_page),
        web.get("/bookings", pages.bookings_page),
        web.get("/bookings/{booking_id}", pages.booking_page),
        web.get("/campaigns", pages.campaigns_page),
        web.get("/flows", pages.flows_page),
        web.get("/stats", pages.stats_page),
        web.get("/console/events", events.call_events),
        web.get("/console/static/console.css", layout.stylesheet),
        web.get("/console/static/console.js", layout.script),
        web.get("/login", auth.login_page),
        web.post("/login", auth.login_submit),
        web.post("/logout", auth.logout),
    ])


__all__ = ["add_console_routes"]
