"""An outbound campaign, whole: a real server dials through the Twilio emulator, which rings
simulated callees who book, decline, opt out, are busy, do not answer, fail, or are answering
machines; the results match what each callee did, and every signal came signed."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from slotline.agent.dialer import cli
from slotline.agent.sim.callees import (
    ANY_HOUR_CONFIG,
    Callees,
    PersonaName,
    office_hours_zone,
    parties,
)
from slotline.providers.emulators.twilio import TwilioEmulator
from slotline.providers.emulators.twilio_outbound import Party
from slotline.providers.telephony.twilio_webhook import sign
from tests.e2e.conftest import Server, running_server

FROM = "+12025550100"
VOICEMAIL = "Hi {user_name}, this is Slotline about your demo. Call us back any time."


async def until(condition: Callable[[], Awaitable[bool]], *, timeout_s: float,
                interval_s: float) -> None:
    """Poll ``condition`` every ``interval_s`` (each poll is an API request)."""
    async with asyncio.timeout(timeout_s):
        for _ in range(int(timeout_s / interval_s) + 1):
            if await condition():
                return
            await asyncio.sleep(interval_s)


@dataclass
class Line:
    phone: str
    persona: PersonaName | str
    name: str


def number(i: int) -> str:
    return f"+1212555{i:04d}"


PEOPLE: list[Line] = (
    [Line(number(100 + i), "books", f"Booker {i}") for i in range(4)]
    + [Line(number(200 + i), "declines", f"Decliner {i}") for i in range(4)]
    + [Line(number(300 + i), "opts_out", f"Optout {i}") for i in range(2)]
    + [Line(number(400 + i), "machine", f"Machine {i}") for i in range(3)]
    + [Line(number(500 + i), "busy", f"Busy {i}") for i in range(3)]
    + [Line(number(600 + i), "no-answer", f"Nobody {i}") for i in range(3)]
    + [Line(number(700 + i), "failed", f"Failed {i}") for i in range(2)]
)
# reached only by the command-line tests
CLI_BOOKER = number(900)
CLI_DECLINERS = [number(901), number(902)]
CLI_BUSY = number(903)
EXPECTED = {"books": "booked", "declines": "declined", "opts_out": "do_not_call",
            "machine": "voicemail", "busy": "busy", "no-answer": "no_answer",
            "failed": "failed"}


@dataclass
class Rig:
    server: Server
    emulator: TwilioEmulator
    callees: Callees
    http: aiohttp.ClientSession


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = tmp_path / "any_hour.yaml"  # contacts in today's office-hours zone book there
    config.write_text(ANY_HOUR_CONFIG)
    callees = Callees()
    book: dict[str, Party] = {}
    for index, line in enumerate(PEOPLE):
        if line.persona in ("busy", "no-answer", "failed"):
            book[line.phone] = Party(kind=line.persona, ring_ms=200)  # type: ignore[arg-type]
        else:
            book[line.phone] = callees.party(line.persona, variant=index)  # type: ignore[arg-type]
    book[CLI_BOOKER] = callees.party("books", variant=1)
    for phone in CLI_DECLINERS:
        book[phone] = callees.party("declines")
    book[CLI_BUSY] = Party(kind="busy", ring_ms=200)
    emulator = TwilioEmulator(cps=4.0, parties=parties(book))
    async with emulator:
        runner, server = await running_server(
            {"SLOTLINE_TWILIO__BASE_URL": emulator.base_url,
             "SLOTLINE_TWILIO__FROM_NUMBER": FROM},
            {"TWILIO_ACCOUNT_SID": emulator.account_sid,
             "TWILIO_AUTH_TOKEN": emulator.auth_token},
            config=config,
        )
        try:
            async with aiohttp.ClientSession() as http:
                yield Rig(server, emulator, callees, http)
        finally:
            await runner.cleanup()


def contacts_csv(lines: list[Line], zone: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Phone", "Name", "timezone", "Company"])
    for line in lines:
        writer.writerow([line.phone, line.name, zone, "Acme"])
    writer.writerow(["not a number", "Bad Row", zone, "Acme"])  # rejected, line numbered
    writer.writerow([lines[0].phone, "Again", zone, "Acme"])  # a duplicate
    return out.getvalue().encode()


async def test_a_campaign_of_mixed_callees_ends_as_each_callee_did(rig: Rig) -> None:
    zone = office_hours_zone()
    query = {"flow": "lead_qualify", "cps": "4", "concurrency": "6", "max_attempts": "2",
             "retry_after_s": "1", "machine": "voicemail", "voicemail_message": VOICEMAIL,
             "window": "08:00-21:00"}
    async with rig.http.post(f"{rig.server.url}/api/campaigns", params=query,
                             data=contacts_csv(PEOPLE, zone),
                             headers={"Content-Type": "text/csv"}) as response:
        assert response.status == 201, await response.text()
        created = await response.json()
    assert created["contacts"] == len(PEOPLE)
    lines = {r["line"]: r["reason"] for r in created["rejected"]}
    assert "not a phone number" in lines[len(PEOPLE) + 2]
    assert "duplicate of line 2" in lines[len(PEOPLE) + 3]
    campaign_url = f"{rig.server.url}/api/campaigns/{created['id']}"

    async def done() -> bool:
        async with rig.http.get(campaign_url) as got:
            return (await got.json())["status"] == "done"

    await until(done, timeout_s=240, interval_s=1.0)
    async with rig.http.get(campaign_url) as got:
        body = await got.json()
    by_phone = {c["phone"]: c for c in body["contacts"] if c["outcome"] != "invalid"}
    for line in PEOPLE:
        contact = by_phone[line.phone]
        if contact["outcome"] != EXPECTED[line.persona] and contact["attempts"]:
            sid = contact["attempts"][-1]["call_sid"]
            async with rig.http.get(f"{rig.server.url}/api/calls/{sid}") as got:
                call = await got.json()
            said = [(t["role"], t["text"]) for t in call.get("turns", [])]
            raise AssertionError(f"{line}: {contact}\n{said}\n{call.get('errors')}")
        retried = line.persona in ("busy", "no-answer", "failed")
        assert len(contact["attempts"]) == (2 if retried else 1), contact
    assert body["counts"]["invalid"] == 2
    # bookings are real: one per booker, each on the call that made it
    bookers = [by_phone[line.phone] for line in PEOPLE if line.persona == "books"]
    for contact in bookers:
        booking_id = contact["booking_id"]
        async with rig.http.get(f"{rig.server.url}/api/bookings/{booking_id}") as got:
            booking = await got.json()
        assert booking["call_sid"] == contact["attempts"][0]["call_sid"]
    # the do-not-call list has the two who asked, by voice
    async with rig.http.get(f"{rig.server.url}/api/dnc") as got:
        listed = {e["phone"]: e["source"] for e in (await got.json())["entries"]}
    assert listed == {line.phone: "voice" for line in PEOPLE if line.persona == "opts_out"}
    # every machine got the voicemail after its beep, and the agent spoke it whole
    machine_sids = {c["attempts"][0]["call_sid"] for c in body["contacts"]
                    if c["outcome"] == "voicemail"}
    voicemails = [r for sid, index, r in rig.callees.reports if sid in machine_sids and index]
    assert len(voicemails) == 3
    for report in voicemails:
        assert report.agent_turns and report.agent_turns[0].audio_ms > 2000
    # the results CSV says the same
    async with rig.http.get(f"{campaign_url}/results.csv") as got:
        rows = list(csv.DictReader(io.StringIO(await got.text())))
    assert {r["phone"]: r["outcome"] for r in rows if r["outcome"] != "invalid"} == {
        line.phone: EXPECTED[line.persona] for line in PEOPLE}
    # pacing: the emulator saw dials no faster than 4 per second, never more than 6 live
    dialled = sorted(c.dispatched_at_s for c in rig.emulator.calls
                     if c.dispatched_at_s is not None)
    gaps = [b - a for a, b in zip(dialled, dialled[1:], strict=False)]
    assert min(gaps) >= 0.25 - 0.02
    assert rig.emulator.max_concurrent <= 6
    # the call log says which calls were the campaign's, and whose
    sid = bookers[0]["attempts"][0]["call_sid"]
    async with rig.http.get(f"{rig.server.url}/api/calls/{sid}") as got:
        call = await got.json()
    assert call["direction"] == "outbound" and call["campaign_id"] == created["id"]
    assert call["outbound"]["outcome"] == "booked"


async def test_forged_callbacks_are_refused_and_change_nothing(rig: Rig) -> None:
    """A status or AMD callback without Twilio's signature (or signed with another token)."""
    async with rig.http.post(f"{rig.server.url}/api/calls", json={
        "to": PEOPLE[4].phone, "flow": "lead_qualify", "variables": {"user_name": "Dee"},
    }) as response:
        assert response.status == 201, await response.text()
        sid = (await response.json())["call_sid"]
    started = time.monotonic()
    url = f"{rig.server.url}/twilio/status"
    forged = {"CallSid": sid, "CallStatus": "busy", "AccountSid": rig.emulator.account_sid}
    for headers in ({}, {"X-Twilio-Signature": sign("wrong-token", url, forged)}):
        async with rig.http.post(url, data=forged, headers=headers) as response:
            assert response.status == 403
    amd = {"CallSid": sid, "AnsweredBy": "machine_end_beep"}
    async with rig.http.post(f"{rig.server.url}/twilio/amd", data=amd) as response:
        assert response.status == 403

    async def settled() -> bool:
        async with rig.http.get(f"{rig.server.url}/api/calls/{sid}") as got:
            return (await got.json())["outbound"]["settled_at"] is not None

    await until(settled, timeout_s=60, interval_s=0.5)
    async with rig.http.get(f"{rig.server.url}/api/calls/{sid}") as got:
        outbound = (await got.json())["outbound"]
    assert outbound["outcome"] == "declined"  # what the callee did, not what the forger said
    assert outbound["answered_by"] == "human"
    assert time.monotonic() - started < 60


async def test_do_not_call_list_is_checked_before_dialing(rig: Rig) -> None:
    phone = PEOPLE[0].phone
    async with rig.http.post(f"{rig.server.url}/api/dnc", json={"phones": [phone]}) as response:
        assert response.status == 200 and (await response.json())["added"] == 1
    async with rig.http.post(f"{rig.server.url}/api/calls", json={
        "to": phone, "flow": "lead_qualify"}) as response:
        assert response.status == 409
    zone = office_hours_zone()
    async with rig.http.post(f"{rig.server.url}/api/campaigns", json={
        "flow": "lead_qualify", "contacts": [{"phone": phone, "timezone": zone},
                                             {"phone": PEOPLE[5].phone, "timezone": zone}],
        "retry_after_s": 1,
    }) as response:
        campaign_id = (await response.json())["id"]
    url = f"{rig.server.url}/api/campaigns/{campaign_id}"

    async def done() -> bool:
        async with rig.http.get(url) as got:
            return (await got.json())["status"] == "done"

    await until(done, timeout_s=60, interval_s=0.5)
    async with rig.http.get(url) as got:
        contacts = {c["phone"]: c for c in (await got.json())["contacts"]}
    assert contacts[phone]["outcome"] == "do_not_call" and contacts[phone]["attempts"] == []
    assert contacts[PEOPLE[5].phone]["outcome"] == "declined"
    assert phone not in {c.to for c in rig.emulator.calls}


async def test_the_command_line_places_a_call_and_runs_a_campaign(
    rig: Rig, tmp_path: Path
) -> None:
    """``slotline call`` and ``slotline campaign run`` against the running server."""
    out = io.StringIO()
    env = {"SLOTLINE_SERVER_URL": rig.server.url}
    code = await asyncio.to_thread(
        cli.run, ["call", CLI_BOOKER, "--flow", "lead_qualify", "--var", "user_name=Maria",
                  "--timeout", "120"], environ=env, out=out)
    printed = out.getvalue()
    assert code == 0, printed
    assert "booked" in printed and "a person" in printed, printed
    zone = office_hours_zone()
    contacts = tmp_path / "leads.csv"
    contacts.write_text("phone,name,timezone\n" + "".join(
        f"{phone},Lead {i},{zone}\n" for i, phone in enumerate([*CLI_DECLINERS, CLI_BUSY])
    ) + "12345,Nobody,UTC\n")
    out = io.StringIO()
    code = await asyncio.to_thread(
        cli.run, ["campaign", "run", str(contacts), "--flow", "lead_qualify", "--cps", "4",
                  "--concurrency", "3", "--window", "08:00-21:00", "--max-attempts", "1",
                  "--retry-after", "1s"], environ=env, out=out)
    printed = out.getvalue()
    assert code == 0, printed
    assert "line 5" in printed, printed  # the bad row, by its line number
    assert "declined" in printed and "busy" in printed, printed
