"""Start-up against the Cal.com emulator over 127.0.0.1: the calendars read their event types,
and a flow that cannot answer a required booking question stops start-up naming the node, the
calendar, the field and the variable — before any call. A flow that collects it (or maps it to a
variable it has) starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from slotline.agent.booking.vendor_fields import flow_variables
from slotline.agent.config_models import Secrets, Settings
from slotline.agent.flow.validate import parse_flow
from slotline.agent.server.calendars import build_calendars
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.errors import ConfigError

KEY = "cal_live_startup_0123456789"
INTAKE = 810
REQUIRED = ({"type": "text", "slug": "company", "label": "Company", "required": True},)


@pytest.fixture
async def emu() -> AsyncIterator[CalcomEmulator]:
    event = EventType(INTAKE, 30, "America/New_York", booking_fields=REQUIRED)
    async with CalcomEmulator(KEY, [event]) as emulator:
        yield emulator


def settings(emu: CalcomEmulator, fields: dict[str, str] | None = None) -> Settings:
    calendar: dict[str, Any] = {"provider": "calcom", "timezone": "America/New_York",
                                "base_url": emu.base_url, "event_type_id": INTAKE}
    if fields:
        calendar["fields"] = fields
    return Settings.model_validate({
        "calendars": {"cal": calendar},
        "booking_actions": {"intake": {"calendars": ["cal"]}},
    })


def flow(*collects: str) -> Any:
    nodes: dict[str, Any] = {}
    order = [*collects, "book"]
    for index, variable in enumerate(collects):
        nodes[variable] = {"type": "conversation", "say": f"Your {variable}?",
                           "collect": variable, "extractor": "text", "next": order[index + 1]}
    nodes["book"] = {"type": "booking", "action": "intake", "success": "bye", "failure": "bye"}
    nodes["bye"] = {"type": "end_call", "say": "Bye."}
    return parse_flow({"name": "intake", "start": order[0], "nodes": nodes},
                      booking_actions=("intake",))


async def start(emu: CalcomEmulator, flows: tuple[Any, ...], **kw: Any) -> None:
    secrets = Secrets(calcom_api_key=SecretStr(KEY))
    async with aiohttp.ClientSession() as http:
        adapters = build_calendars(settings(emu, **kw), secrets, http, flows=flows)
        try:
            await adapters.start()
        finally:
            await adapters.aclose()


async def test_a_required_question_no_variable_answers_stops_start_up(
    emu: CalcomEmulator,
) -> None:
    with pytest.raises(ConfigError) as stopped:
        await start(emu, (flow("user_name"),))
    message = str(stopped.value)
    for part in ("flow intake", "node 'book'", "calendar 'cal'", "field 'company'",
                 "variable 'company'"):
        assert part in message
    assert emu.counts["GET /v2/event-types/{id}"] == 1
    assert emu.counts["POST /v2/bookings"] == 0


async def test_a_flow_collecting_the_answer_or_mapping_it_starts(emu: CalcomEmulator) -> None:
    await start(emu, (flow("user_name", "company"),))
    await start(emu, (flow("business"),), fields={"company": "business"})
    with pytest.raises(ConfigError, match="variable 'business'"):
        await start(emu, (flow("company"),), fields={"company": "business"})


async def test_a_wrong_event_type_stops_start_up(emu: CalcomEmulator) -> None:
    secrets = Secrets(calcom_api_key=SecretStr(KEY))
    wrong = settings(emu).model_copy(deep=True)
    bad = Settings.model_validate({
        "calendars": {"cal": {**wrong.calendars["cal"].model_dump(), "event_type_id": 4040}},
        "booking_actions": {"intake": {"calendars": ["cal"]}},
    })
    async with aiohttp.ClientSession() as http:
        adapters = build_calendars(bad, secrets, http)
        with pytest.raises(ConfigError, match="event type 4040 not found"):
            await adapters.start()
        await adapters.aclose()


def test_flow_variables_include_defaults_and_webhook_answers() -> None:
    parsed = parse_flow({
        "name": "f", "start": "hook", "variables": {"company": ""},
        "nodes": {
            "hook": {"type": "webhook", "webhook": "crm", "receive": ["tier"], "success": "ask",
                     "failure": "ask"},
            "ask": {"type": "conversation", "say": "?", "collect": "user_name",
                    "extractor": "name", "next": "bye"},
            "bye": {"type": "end_call"},
        },
    })
    assert {"company", "tier", "user_name"} <= flow_variables(parsed)
