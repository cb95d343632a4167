"""Every example flow, by voice: the simulated caller speaks recorded audio to a real server
configured with config/examples.yaml, and the call log, the store and the custom-action server
show what each flow promised. (demo_booking has its own tests in test_call.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from slotline.agent.sim.caller import CallerReport, run_caller
from slotline.agent.sim.demo import caller_wav
from slotline.agent.store import NewBooking
from slotline.providers import signing
from slotline.providers.calendars.base import Attendee
from tests.e2e.conftest import Server, call_tasks, running_server

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples.yaml"
SECRET = "whsec_e2e"


@dataclass
class Actions:
    """The business's CRM and payment endpoints the example flows call."""

    url: str = ""
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def crm(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, {"lead_id": "L-17"})

    async def deposit(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, {"payment_id": "pay_1"})

    async def _answer(self, request: web.Request, variables: Mapping[str, str]) -> web.Response:
        raw = await request.read()
        if not signing.verify(SECRET, request.headers.get(signing.HEADER, ""), raw):
            return web.json_response({"error": "bad signature"}, status=401)
        self.seen.append((request.path, orjson.loads(raw)))
        return web.json_response({"success": True, "variables": dict(variables)})


@pytest.fixture
async def examples() -> AsyncIterator[tuple[Server, Actions]]:
    actions = Actions()
    app = web.Application()
    app.router.add_post("/crm/lead", actions.crm)
    app.router.add_post("/payments/deposit", actions.deposit)
    action_runner = web.AppRunner(app)
    await action_runner.setup()
    await web.TCPSite(action_runner, "127.0.0.1", 0).start()
    actions.url = f"http://127.0.0.1:{action_runner.addresses[0][1]}"
    env = {
        "SLOTLINE_WEBHOOKS__CRM_LEAD__URL": f"{actions.url}/crm/lead",
        "SLOTLINE_WEBHOOKS__PAYMENT_DEPOSIT__URL": f"{actions.url}/payments/deposit",
    }
    runner, server = await running_server(
        env, {"SLOTLINE_WEBHOOK_SECRET": SECRET}, config=EXAMPLES
    )
    try:
        yield server, actions
    finally:
        await runner.cleanup()
        await action_runner.cleanup()


async def call(server: Server, flow: str, stems: list[str]) -> tuple[CallerReport, Any, Any]:
    script = [caller_wav(stem) for stem in stems]
    report = await run_caller(server.media_url, script, custom_parameters={"flow": flow})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
            log = await response.json()
        async with http.get(f"{server.url}/api/bookings") as response:
            bookings = (await response.json())["bookings"]
    assert report.errors == (), report.errors
    assert report.closed_by == "server"  # the agent said goodbye and hung up
    assert log["status"] == "completed" and log["flow"] == flow and log["errors"] == []
    assert call_tasks() == []
    return report, log, bookings


async def test_sales_demo_qualifies_records_the_lead_and_books_round_robin(
    examples: tuple[Server, Actions],
) -> None:
    server, actions = examples
    _, log, bookings = await call(
        server, "sales_demo",
        ["name_jane", "company_acme", "team_small", "no", "email_john", "day_tuesday", "time_3pm",
         "yes"],
    )
    variables = log["variables"]
    assert variables["user_name"] == "Jane Doe" and variables["team_size"] == "team"
    assert variables["user_email"] == "john.smith@example.com"
    assert variables["lead_id"] == "L-17" and variables["booking_success"] == "yes"
    assert actions.seen[0][0] == "/crm/lead"
    assert actions.seen[0][1]["variables"]["company"]  # what STT heard of "acme corporation"
    assert log["node"] == "booked" and len(bookings) == 1
    assert bookings[0]["action"] == "sales" and bookings[0]["calendar"] in {"alice", "bob"}
    # name and e-mail were asked before booking: the booking carries both
    assert bookings[0]["attendee"]["name"] == "Jane Doe"
    assert bookings[0]["attendee"]["email"] == "john.smith@example.com"
    assert "T15:00:00-05:00" in bookings[0]["start"] or "T20:00:00+00:00" in bookings[0]["start"]


async def test_support_callback_books_an_afternoon_callback(
    examples: tuple[Server, Actions],
) -> None:
    server, _ = examples
    _, log, bookings = await call(
        server, "support_callback", ["name_john", "issue_sync", "phone", "afternoon", "first_one"]
    )
    variables = log["variables"]
    assert variables["user_phone"] == "+15551234567" and variables["time_preference"] == "afternoon"
    assert log["node"] == "done" and len(bookings) == 1
    booking = bookings[0]
    assert booking["action"] == "support_callback" and booking["attendee"]["phone"]
    start = datetime.fromisoformat(booking["start"])
    assert 12 <= (start.astimezone(UTC) - timedelta(hours=5)).hour < 17  # afternoon, New York


async def test_consultation_takes_the_deposit_before_booking_a_new_client(
    examples: tuple[Server, Actions],
) -> None:
    server, actions = examples
    _, log, bookings = await call(
        server, "consultation",
        ["name_john", "estate", "no", "email_john", "yes", "day_tuesday", "time_3pm", "yes"],
    )
    # the address is read back before the deposit request goes to it, and not again at booking
    agent = [turn["text"] for turn in log["turns"] if turn["role"] == "agent"]
    assert "That's j o h n dot s m i t h at example dot com. Is that right?" in agent, agent
    assert not any("send the details to" in text for text in agent), agent
    variables = log["variables"]
    assert variables["topic"] == "estate" and variables["returning_client"] == "no"
    assert variables["user_email"] == "john.smith@example.com"
    assert variables["payment_id"] == "pay_1"
    assert [path for path, _ in actions.seen] == ["/payments/deposit"]
    assert log["node"] == "booked" and len(bookings) == 1
    assert bookings[0]["calendar"] == "advisor"
    assert "T15:00:00-06:00" in bookings[0]["start"] or "T21:00:00+00:00" in bookings[0]["start"]


async def test_multi_service_books_the_services_own_calendar(
    examples: tuple[Server, Actions],
) -> None:
    server, _ = examples
    _, log, bookings = await call(
        server, "multi_service", ["haircut", "name_jane", "no", "day_tuesday", "time_3pm", "yes"]
    )
    assert log["variables"]["service"] == "haircut" and log["node"] == "booked"
    assert "user_email" not in log["variables"]  # "no thanks": booked without one
    assert len(bookings) == 1 and bookings[0]["action"] == "haircut"
    assert bookings[0]["calendar"] == "cutting"
    start = datetime.fromisoformat(bookings[0]["start"])
    end = datetime.fromisoformat(bookings[0]["end"])
    assert end - start == timedelta(minutes=45)


async def test_reschedule_cancel_finds_the_booking_by_phone_and_cancels_it(
    examples: tuple[Server, Actions],
) -> None:
    server, _ = examples
    store = server.deps.store
    assert store is not None
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    made = await store.bookings.create(NewBooking(
        calendar="main", provider="local", start=start, end=start + timedelta(minutes=30),
        attendee=Attendee("John Smith", phone="+1 555 123 4567"), idempotency_key="seed-1",
        action="demo",
    ))
    _, log, bookings = await call(
        server, "reschedule_cancel", ["cancel_short", "by_phone", "phone", "yes", "yes"]
    )
    assert log["variables"]["request"] == "cancel" and log["node"] == "cancelled"
    assert [(b["id"], b["status"]) for b in bookings] == [(made.id, "cancelled")]
    # the call cancelled a booking another made: it made none (the stored log agrees)
    assert log["variables"]["booking_id"] == made.id and log["bookings"] == []
