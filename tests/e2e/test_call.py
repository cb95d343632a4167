"""Whole calls over real sockets: the simulated caller phones a real server with real speech."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp

from slotline.agent.sim.caller import PressDigit, Speak, Step, run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from tests.e2e.conftest import Server, call_tasks, running_server
from tests.e2e.providers import booking_env
from tests.e2e.voices import DEMO_ZONE, said_day


async def test_whole_call_books_by_voice_and_is_logged(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        url, params = await fetch_stream(http, server.url)
        assert url == server.media_url
        assert params == {"flow": "demo_booking", "user_phone": "+15005550006"}
        script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        report = await run_caller(url, script, custom_parameters=params, session=http)
        assert report.closed_by == "server"  # the agent hung up after its goodbye
        assert report.errors == ()
        async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
            assert response.status == 200
            call = await response.json()
        async with http.get(f"{server.url}/api/bookings") as response:
            assert response.status == 200
            bookings = (await response.json())["bookings"]
    assert call["status"] == "completed" and call["errors"] == []
    assert call["node"] == "goodbye"
    assert call["variables"]["user_name"] == "John Smith"
    assert call["variables"]["booking_success"] == "yes"
    assert call["llm"] == {}  # no model configured: no block of zeros
    caller_said = [t["text"] for t in call["turns"] if t["role"] == "caller"]
    assert caller_said == [u.text for u in DEMO_SCRIPT]
    # exactly one booking, made by this call, on the local calendar, at 3 pm New York time
    assert [b["id"] for b in bookings] == call["bookings"]
    booking = bookings[0]
    assert booking["call_sid"] == report.call_sid and booking["status"] == "confirmed"
    assert booking["provider"] == "local" and booking["attendee"]["name"] == "John Smith"
    assert "T15:00:00-05:00" in booking["start"] or booking["start"].endswith("T20:00:00+00:00")
    # every caller turn was answered with audio, and both sides measured the wait; the silence
    # that ends a turn is the question's patience (yes/no answers are short), or a short one
    # once the words hold the whole answer the question waits for
    turn = server.settings.turn
    silence_ms = {"short": turn.short_silence_ms, "normal": turn.end_silence_ms,
                  "long": turn.long_silence_ms}
    heard = [t for t in call["turns"] if t["role"] == "caller"]
    answers = [t for t in call["turns"] if t["role"] == "agent" and "latency" in t]
    assert len(answers) == len(heard) == len(DEMO_SCRIPT)
    assert [t.get("patience") for t in heard] == ["normal", "long", "normal", "normal", "short"]
    for caller_turn, said, reply in zip(report.turns, heard, answers, strict=True):
        assert said["ended_by"] in ("silence", "complete_answer")
        expected_ms = (turn.complete_silence_ms if said["ended_by"] == "complete_answer"
                       else silence_ms[said["patience"]])
        assert caller_turn.turn_latency_ms is not None
        # the turn ends after the silence (counted from the server's last loud frame, which the
        # caller's last voiced frame may follow by part of a frame: 1199.7 ms for 1200 seen)
        assert caller_turn.turn_latency_ms >= expected_ms - 20
        latency = reply["latency"]
        assert latency["endpoint_ms"] >= expected_ms - 20  # frames arrive with jitter
        assert latency["turn_latency_ms"] >= latency["endpoint_ms"]
    # nobody interrupted: every agent turn played to the end
    assert not any(t.interrupted for t in report.agent_turns)
    # the confirmation was synthesized while the caller answered the read-back, and said
    booked_line = next(t["text"] for t in call["turns"] if t["text"].startswith("You're all set"))
    start = datetime.fromisoformat(booking["start"])
    assert start.astimezone(ZoneInfo(DEMO_ZONE)).strftime("%A") == "Tuesday"  # "next tuesday"
    assert booked_line == f"You're all set for {said_day(start)} at 3 pm."
    assert server.deps.metrics.tts_ahead.values == {"made": 1, "used": 1}
    assert call_tasks() == []


async def test_barge_in_clears_audio_cancels_reply_and_records_what_was_heard(
    server: Server,
) -> None:
    script = [
        # interrupt the greeting once its first sentence has played
        Speak(caller_wav("interrupt").audio, interrupt_after_ms=2500),
        caller_wav("name_john"),
    ]
    report = await run_caller(server.media_url, script)
    greeting = report.agent_turns[0]
    assert greeting.interrupted  # a clear dropped audio the caller had not heard yet
    # the reply was cancelled: paced at most outbound_lead_ms ahead, the greeting's later
    # sentences (3 in its first utterance, one mark each) never left the server
    sentences = len(greeting.marks_heard) + len(greeting.marks_unheard)
    assert 1 <= sentences < 3
    record = server.deps.call_log.get(report.call_sid)
    assert record is not None
    agent_greeting = record.turns[0]
    assert agent_greeting.role == "agent" and agent_greeting.interrupted
    assert agent_greeting.heard_text is not None
    assert agent_greeting.text.startswith(agent_greeting.heard_text)
    assert agent_greeting.heard_text != agent_greeting.text
    assert record.turns[1].role == "caller" and record.turns[1].text  # the interruption
    assert "my name is john smith" in [t.text for t in record.turns if t.role == "caller"]
    assert server.deps.metrics.bargein.count == 1
    assert call_tasks() == []


async def test_dtmf_reaches_the_flow(server: Server) -> None:
    # the time question answered on the keypad: "3" is read like a spoken three (3 pm)
    script: list[Step] = [caller_wav("name_john"), caller_wav("no"), caller_wav("day_tuesday"),
                          PressDigit("3"), caller_wav("yes")]
    report = await run_caller(server.media_url, script)
    record = server.deps.call_log.get(report.call_sid)
    assert record is not None and record.dtmf == ["3"]
    assert record.variables["preferred_time"] == "15:00"
    assert len(record.bookings) == 1
    assert report.closed_by == "server"


async def test_backchannel_does_not_interrupt_or_leak_into_the_next_turn() -> None:
    # "uh huh" is ~650 ms of speech: with a 1 s barge-in threshold it is a backchannel
    runner, server = await running_server(env={"SLOTLINE_TURN__BARGEIN_MIN_SPEECH_MS": "1000"})
    try:
        script = [
            Speak(caller_wav("backchannel").audio, interrupt_after_ms=1000),
            *(caller_wav(u.stem) for u in DEMO_SCRIPT),
        ]
        report = await run_caller(server.media_url, script)
        record = server.deps.call_log.get(report.call_sid)
        assert record is not None
        assert not report.agent_turns[0].interrupted  # the greeting played to the end
        caller_said = [t.text for t in record.turns if t.role == "caller"]
        assert caller_said == [u.text for u in DEMO_SCRIPT]  # no "uh huh" prefix
        assert server.deps.metrics.bargein.count == 0
    finally:
        await runner.cleanup()


async def test_talking_over_the_goodbye_does_not_stop_the_hang_up(server: Server) -> None:
    script = [
        *(caller_wav(u.stem) for u in DEMO_SCRIPT),
        # "wait sorry hold on" over the goodbye: it may cut the goodbye short (barge-in), but
        # the flow has ended and its hang-up still runs: the server closes the call
        Speak(caller_wav("interrupt").audio, interrupt_after_ms=800),
    ]
    report = await run_caller(server.media_url, script, reply_timeout_s=8)
    record = server.deps.call_log.get(report.call_sid)
    assert record is not None
    assert report.closed_by == "server" and record.status == "completed"
    assert record.node == "goodbye" and len(record.bookings) == 1
    assert server.deps.metrics.active_calls == 0
    assert call_tasks() == []


async def test_a_collective_booking_is_logged_on_every_calendar() -> None:
    # the demo action books "main" and "second" together: one booking per calendar
    env = {
        "SLOTLINE_CALENDARS__SECOND__PROVIDER": "local",
        "SLOTLINE_CALENDARS__SECOND__TIMEZONE": "America/New_York",
        **booking_env(("main", "second"), "collective"),
    }
    runner, server = await running_server(env)
    try:
        report = await run_caller(server.media_url, [caller_wav(u.stem) for u in DEMO_SCRIPT])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/api/calls/{report.call_sid}") as response:
                call = await response.json()
            async with http.get(f"{server.url}/api/bookings") as response:
                bookings = (await response.json())["bookings"]
        assert server.deps.store is not None
        stored = await server.deps.store.calls.get(report.call_sid)
    finally:
        await runner.cleanup()
    assert report.closed_by == "server" and call["node"] == "goodbye"
    assert sorted(b["calendar"] for b in bookings) == ["main", "second"]
    assert all(b["call_sid"] == report.call_sid for b in bookings)
    # the live log lists both (the flow's booking_id first), and the stored log agrees
    assert sorted(call["bookings"]) == sorted(b["id"] for b in bookings)
    assert call["bookings"][0] == call["variables"]["booking_id"]
    assert stored is not None and sorted(stored.bookings) == sorted(call["bookings"])
    assert call_tasks() == []
