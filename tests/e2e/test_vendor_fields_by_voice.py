"""The vendors' own fields, filled by voice: whole calls over the Twilio media protocol to a real
server (offline recogniser) whose calendar is a vendor emulator on 127.0.0.1.

- Cal.com: the event type asks a required question of its own ("service"); the flow collects
  it, and the emulator's stored booking has it in ``bookingFieldsResponses`` (without the
  answer Cal.com refuses the booking, and start-up would have refused the flow).
- a call asking for a flow that cannot answer that question (``flow`` parameter
  ``demo_booking``) gets the configured flow instead, which can.
- GoHighLevel: ``auto_confirm: false``, a title template and the contact's tags and custom
  field from flow variables: the emulator's appointment is "new" with the rendered title, and
  its contact carries the tags and the company.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from slotline.agent.sim.demo import caller_wav
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.emulators.ghl import GhlCalendarRules, GhlEmulator
from tests.e2e.conftest import running_server
from tests.e2e.providers import ZONE, next_tuesday
from tests.e2e.voices import logged_call

KEY, TOKEN, LOCATION, GHL_CAL, EVENT = "cal_live_fields_e2e", "pit-fields", "loc-f", "cal-f", 4301
SAID = ["name_john", "haircut", "day_tuesday", "time_3pm", "yes"]  # bundled recordings
FLOW = """\
name: vendor_fields
timezone: America/New_York
start: ask_name
nodes:
  ask_name: {type: conversation, say: "May I have your name?", collect: user_name,
             extractor: name, next: ask_service}
  ask_service: {type: conversation, say: "Is that a haircut, coloring, or styling?",
                collect: service, extractor: choice, next: ask_date,
                choices: ["haircut|hair cut|cut|trim", "coloring|colouring|color|colour",
                          "styling|style|blow dry"]}
  ask_date: {type: conversation, say: "What day would you like?", collect: preferred_date,
             extractor: date, next: ask_time}
  ask_time: {type: conversation, say: "What time suits you?", collect: preferred_time,
             extractor: time, next: book}
  book: {type: booking, action: demo, say: "Let me check.", confirm: true, success: booked,
         failure: bye}
  booked: {type: end_call, say: "You're all set for {booked_date} at {booked_time}."}
  bye: {type: end_call, say: "Goodbye!"}
"""
CALLER = {"user_phone": "+15005550006"}


async def call(
    tmp_path: Path, calendar: Mapping[str, Any], secrets: Mapping[str, str],
    parameters: Mapping[str, str] = CALLER,
) -> Any:
    """One call with the vendor ``calendar`` as ``main``; the call log's JSON."""
    flow = tmp_path / "vendor_fields.yaml"
    flow.write_text(FLOW)
    config = tmp_path / "slotline.yaml"
    config.write_text(yaml.safe_dump({
        "flow": str(flow),
        "calendars": {"main": {"timezone": ZONE, **calendar}},
        "booking_actions": {"demo": {"calendars": ["main"], "min_notice_min": 5}},
    }))
    runner, server = await running_server(secret_env=secrets, config=config)
    try:
        script = [caller_wav(stem) for stem in SAID]
        report, log = await logged_call(server, script, parameters)
        assert log["node"] == "booked", [(t["role"], t["text"]) for t in log["turns"]]
        assert log["variables"]["service"] == "haircut"
        assert server.deps.store is not None
        [stored] = await server.deps.store.bookings.for_call(report.call_sid)
        assert stored.start == next_tuesday(time(15))
        return log
    finally:
        await runner.cleanup()


async def test_a_required_cal_com_question_is_answered_by_voice(tmp_path: Path) -> None:
    question = {"type": "select", "slug": "service", "label": "Service", "required": True,
                "options": ["haircut", "coloring", "styling"]}
    event = EventType(EVENT, 30, ZONE, slug="intake", booking_fields=(question,))
    async with CalcomEmulator(KEY, [event]) as calcom:
        await call(tmp_path, {"provider": "calcom", "base_url": calcom.base_url,
                              "event_type_id": EVENT}, {"CALCOM_API_KEY": KEY})
        [booking] = calcom.live_bookings()
    assert booking["bookingFieldsResponses"]["service"] == "haircut"
    assert booking["attendees"][0]["name"] == "John Smith"


async def test_ghl_status_title_tags_and_custom_field_by_voice(tmp_path: Path) -> None:
    rules = GhlCalendarRules(GHL_CAL, ZONE, 30, name="Intake")
    async with GhlEmulator(token=TOKEN, location_id=LOCATION, calendars=(rules,)) as ghl:
        await call(tmp_path, {
            "provider": "ghl", "base_url": ghl.base_url, "calendar_id": GHL_CAL,
            "location_id": LOCATION, "auto_confirm": False,
            "title": "{service} for {user_name}", "tags": ["voice", "{service}"],
            "fields": {"cf-service": "service"},
        }, {"GHL_API_TOKEN": TOKEN})
        [appointment] = ghl.appointments.values()
        contact = ghl.contacts[appointment.contact_id]
    assert appointment.status == "new"
    assert appointment.title == "haircut for John Smith"
    assert contact.tags == ["voice", "haircut"]
    assert contact.custom_fields == {"cf-service": "haircut"}
    assert not ghl.rejections


async def test_a_call_asking_for_a_flow_that_cannot_answer_gets_the_one_that_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    question = {"type": "select", "slug": "service", "label": "Service", "required": True,
                "options": ["haircut", "coloring", "styling"]}
    event = EventType(EVENT, 30, ZONE, slug="intake", booking_fields=(question,))
    async with CalcomEmulator(KEY, [event]) as calcom:
        log = await call(tmp_path, {"provider": "calcom", "base_url": calcom.base_url,
                                    "event_type_id": EVENT}, {"CALCOM_API_KEY": KEY},
                         {**CALLER, "flow": "demo_booking"})
        [booking] = calcom.live_bookings()
    assert log["path"][:2] == ["ask_name", "ask_service"]  # the configured flow, not demo's
    assert "asked for flow 'demo_booking'" in caplog.text and "'service'" in caplog.text
    assert booking["bookingFieldsResponses"]["service"] == "haircut"
