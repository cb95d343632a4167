"""The operator console (issue 15) over real sockets: pages render, user input is escaped,
and only people who may use the API see it (session cookie with a token, loopback without)."""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from slotline.agent.call.calllog import CallRecord, Latency, Turn
from slotline.agent.console.auth import COOKIE, SESSION_TTL_S, session_cookie
from slotline.agent.store.dialer_records import NewContact
from slotline.agent.store.recordings import StoredRecording
from slotline.agent.store.records import StoredCall
from tests.e2e.conftest import Server, running_server

API_TOKEN = "console-t0ken"
HOSTILE = '<script>alert("pwned")</script>'
HOSTILE_NAME = '<img src=x onerror="alert(1)">'


@pytest.fixture
async def open_server() -> AsyncIterator[Server]:
    runner, srv = await running_server()
    try:
        yield srv
    finally:
        await runner.cleanup()


@pytest.fixture
async def token_server() -> AsyncIterator[Server]:
    runner, srv = await running_server(secret_env={"SLOTLINE_API_TOKEN": API_TOKEN})
    try:
        yield srv
    finally:
        await runner.cleanup()


def _hostile_call(call_sid: str) -> CallRecord:
    record = CallRecord(call_sid=call_sid, stream_sid="MZ1", flow="demo_booking",
                        variables={"user_name": HOSTILE_NAME, "user_phone": "+15005550006"})
    record.add_turn(Turn(role="agent", text="Hi, thanks for calling. May I have your name?"))
    record.add_turn(Turn(role="caller", text=HOSTILE))
    record.add_turn(Turn(role="agent", text="Thanks! What day suits you best?",
                         interrupted=True, heard_text="Thanks! What",
                         latency=Latency(turn_latency_ms=812.0, endpoint_ms=500.0,
                                         stt_final_ms=120.0, llm_ttft_ms=90.0,
                                         tts_ttfb_ms=60.0, server_overhead_ms=42.0)))
    record.add_error("stt", HOSTILE)
    return record


async def _get(server: Server, path: str, *, cookie: str | None = None,
               headers: Mapping[str, str] | None = None) -> tuple[int, str, Mapping[str, str]]:
    sent = dict(headers or {})
    if cookie is not None:
        sent["Cookie"] = f"{COOKIE}={cookie}"
    async with aiohttp.ClientSession() as http, \
            http.get(server.url + path, headers=sent, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers


async def _login(server: Server, token: str, next_path: str = "/") -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http:
        response = await http.post(server.url + "/login", allow_redirects=False,
                                   data={"token": token, "next": next_path})
        await response.read()
        return response


async def test_pages_render_and_escape_a_hostile_transcript(open_server: Server) -> None:
    record = _hostile_call("CAhostile1")
    open_server.deps.call_log.add(record)
    assert open_server.deps.store is not None
    await open_server.deps.store.calls.save(
        StoredCall.from_record(_hostile_call("CAhostile2")))

    status, calls_page, headers = await _get(open_server, "/")
    assert status == 200, calls_page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    for sid in ("CAhostile1", "CAhostile2"):
        assert f'data-sid="{sid}"' in calls_page
    assert HOSTILE_NAME not in calls_page and "&lt;img src=x" in calls_page

    status, call_page, _ = await _get(open_server, "/calls/CAhostile1")
    assert status == 200
    assert "<script>" not in call_page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in call_page
    assert 'class="bubble agent interrupted"' in call_page
    assert '<span class="unheard"> day suits you best?</span>' in call_page
    assert "Turn latency" in call_page and "STT final" in call_page  # the waterfall
    assert "<audio" not in call_page  # no recording on this record

    status, stored_page, _ = await _get(open_server, "/calls/CAhostile2")  # from the store
    assert status == 200 and "&lt;script&gt;" in stored_page and "<script>" not in stored_page
    assert (await _get(open_server, "/calls/CAnope"))[0] == 404

    status, filtered, _ = await _get(open_server, "/?q=5550006&status=in-progress")
    assert status == 200 and 'data-sid="CAhostile1"' in filtered
    status, filtered, _ = await _get(open_server, "/?direction=outbound")
    assert 'data-sid="CAhostile1"' not in filtered


async def test_every_page_renders(open_server: Server) -> None:
    for path, text in (("/bookings", "no bookings yet"), ("/campaigns", "no campaigns yet"),
                       ("/flows", "demo_booking"), ("/stats", "Calls per hour"),
                       ("/console/static/console.css", ".bubble"),
                       ("/console/static/console.js", "EventSource")):
        status, body, _ = await _get(open_server, path)
        assert status == 200, path
        assert text in body, path
    _, flows, _ = await _get(open_server, "/flows")
    assert '<div class="graph"><svg' in flows  # the default flow, drawn
    assert "ask_name" in flows  # a node of demo_booking, in its graph and edge list
    # `flow validate`'s problems: bundled flows that name booking actions not configured here
    assert '<ul class="problems">' in flows and "is not configured" in flows


async def test_without_a_token_the_console_follows_the_api_loopback_rule(
    open_server: Server,
) -> None:
    assert (await _get(open_server, "/"))[0] == 200
    for path in ("/", "/console/events", "/bookings"):
        status, _, _ = await _get(open_server, path, headers={"X-Forwarded-For": "203.0.113.7"})
        assert status == 401, path
    status, _, headers = await _get(open_server, "/login")
    assert status == 303 and headers["Location"] == "/"


async def test_with_a_token_the_console_needs_a_session(token_server: Server) -> None:
    status, _, headers = await _get(token_server, "/bookings?x=1")
    assert status == 303
    location = URL(headers["Location"])
    assert location.path == "/login" and location.query["next"] == "/bookings?x=1"
    assert (await _get(token_server, "/console/events"))[0] == 401
    status, login, _ = await _get(token_server, "/login?next=/bookings")
    assert status == 200 and 'name="token"' in login

    wrong = await _login(token_server, "not-the-token")
    assert wrong.status == 401 and COOKIE not in wrong.cookies

    right = await _login(token_server, API_TOKEN, "/bookings")
    assert right.status == 303 and right.headers["Location"] == "/bookings"
    set_cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    cookie = right.cookies[COOKIE].value
    assert API_TOKEN not in cookie
    status, page, _ = await _get(token_server, "/bookings", cookie=cookie)
    assert status == 200 and "Bookings" in page

    # the session reaches the API too (a results link, a recording), never a forged one
    assert (await _get(token_server, "/api/calls"))[0] == 401
    assert (await _get(token_server, "/api/calls", cookie=cookie))[0] == 200


async def test_forged_and_expired_cookies_are_refused(token_server: Server) -> None:
    now = time.time()
    expires, _, mac = session_cookie(API_TOKEN, now).partition(".")
    forged = (
        session_cookie("some-other-token", now),  # signed with the wrong key
        f"{int(expires) + 3600}.{mac}",  # a later expiry under the same MAC
        session_cookie(API_TOKEN, now - 2 * SESSION_TTL_S),  # expired
        API_TOKEN,  # the token itself is not a session
        "",
    )
    for cookie in forged:
        status, _, headers = await _get(token_server, "/", cookie=cookie)
        assert status == 303 and headers["Location"].startswith("/login"), cookie
        assert (await _get(token_server, "/console/events", cookie=cookie))[0] == 401
        assert (await _get(token_server, "/api/calls", cookie=cookie))[0] == 401
    good = session_cookie(API_TOKEN, now)
    assert (await _get(token_server, "/", cookie=good))[0] == 200


async def test_login_never_redirects_off_the_server(token_server: Server) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = await _login(token_server, API_TOKEN, target)
        assert response.status == 303 and response.headers["Location"] == "/", target


async def test_campaign_buttons_post_to_the_api_with_the_session(token_server: Server) -> None:
    store = token_server.deps.store
    assert store is not None
    campaign_id = await store.campaigns.create(
        name="spring <b>promo</b>", flow="demo_booking", settings={"cps": 1.0},
        contacts=[NewContact(line=2, phone="+15005550006", name="Ann")])
    cookie = session_cookie(API_TOKEN, time.time())
    status, page, _ = await _get(token_server, "/campaigns", cookie=cookie)
    assert status == 200
    assert "spring &lt;b&gt;promo&lt;/b&gt;" in page
    assert f'href="/api/campaigns/{campaign_id}/results.csv"' in page
    assert 'data-verb="pause"' in page

    url = f"{token_server.url}/api/campaigns/{campaign_id}/pause"
    async with aiohttp.ClientSession() as http:
        # a cross-site form could send the cookie's request but never the console's header
        async with http.post(url, headers={"Cookie": f"{COOKIE}={cookie}"}) as response:
            assert response.status == 401
        async with http.post(url, headers={"Cookie": f"{COOKIE}={cookie}",
                                           "X-Slotline-Console": "1"}) as response:
            assert response.status == 200, await response.text()
    row = await store.campaigns.get(campaign_id)
    assert row is not None and row.status == "paused"
    status, csv_text, _ = await _get(token_server, f"/api/campaigns/{campaign_id}/results.csv",
                                     cookie=cookie)
    assert status == 200 and csv_text.startswith("line,phone")


async def test_events_push_a_call_that_starts_after_the_page(open_server: Server) -> None:
    async with aiohttp.ClientSession() as http, \
            http.get(open_server.url + "/console/events") as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        record = CallRecord(call_sid="CAlive1", stream_sid="MZ2", flow="demo_booking",
                            started_at=datetime.now(UTC).isoformat())
        open_server.deps.call_log.add(record)
        seen = ""
        async with asyncio.timeout(10):
            while "CAlive1" not in seen:
                seen += (await response.content.readline()).decode()
        assert "event: call" in seen and "in-progress" in seen
        record.status = "completed"
        seen = ""
        async with asyncio.timeout(10):
            while "completed" not in seen:
                seen += (await response.content.readline()).decode()


# the demo flow's nodes in the order a caller might take them, back once, and a node the flow
# no longer has (the flow was edited since the call) whose name must be escaped too
WALKED = ["greet", "ask_name", "ask_date", "ask_name", "ask_date", "ask_time", HOSTILE_NAME]


def _steps(page: str) -> dict[str, str]:
    """Each numbered move drawn on the graph: its numbers → "from → to"."""
    moves = re.findall(r'<g class="step-number"><title>step ([0-9,]+): (.*?)</title>', page)
    return dict(moves)


async def test_the_call_page_draws_the_path_on_the_flow_and_lists_it(open_server: Server) -> None:
    record = CallRecord(call_sid="CApath1", stream_sid="MZ1", flow="demo_booking")
    record.set_path(WALKED)
    open_server.deps.call_log.add(record)
    assert open_server.deps.store is not None
    stored = CallRecord(call_sid="CApath2", stream_sid="MZ2", flow="demo_booking")
    stored.set_path(WALKED)
    await open_server.deps.store.calls.save(StoredCall.from_record(stored))

    for sid in ("CApath1", "CApath2"):  # live in this process / read back from the store
        status, page, _ = await _get(open_server, f"/calls/{sid}")
        assert status == 200, page
        assert '<div class="graph" id="flow-path"><svg' in page
        visited = set(re.findall(r'<g class="node visited" data-node="([^"]+)"', page))
        assert visited == {"greet", "ask_name", "ask_date", "ask_time"}
        assert '<g class="node" data-node="goodbye">' in page  # not entered: not marked
        assert _steps(page) == {
            "1": "greet → ask_name",
            "2,4": "ask_name → ask_date",  # taken twice: both numbers on the one arrow
            "3": "ask_date → ask_name",  # back again (a retry)
            "5": "ask_date → ask_time",
        }  # step 6, to a node the flow no longer has, is listed but not drawn
        listed = re.search(r'<ol class="path" id="path">(.*?)</ol>', page)
        assert listed is not None
        assert re.findall(r"<li>(.*?)</li>", listed.group(1)) == [
            *WALKED[:-1], "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"]
        assert HOSTILE_NAME not in page

    elsewhere = CallRecord(call_sid="CApath3", stream_sid="MZ3", flow="gone_flow")
    elsewhere.set_path(["start", "end"])
    open_server.deps.call_log.add(elsewhere)
    status, page, _ = await _get(open_server, "/calls/CApath3")
    assert status == 200
    assert "the flow gone_flow is not among this server" in page and 'id="flow-path"' not in page
    assert "<li>start</li><li>end</li>" in page

    fresh = CallRecord(call_sid="CApath4", stream_sid="MZ4", flow="demo_booking")
    open_server.deps.call_log.add(fresh)
    status, page, _ = await _get(open_server, "/calls/CApath4")
    assert status == 200 and "no node entered yet" in page


def _silence_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0\0\0" * 800)  # 0.1 s


async def test_the_call_page_plays_the_recording_the_store_keeps(
    token_server: Server, tmp_path: Path
) -> None:
    store = token_server.deps.store
    assert store is not None
    for sid in ("CArec1", "CArec2"):
        await store.calls.save(StoredCall(sid, "demo_booking", "completed", datetime.now(UTC)))
    wav_path = tmp_path / "CArec1.wav"
    _silence_wav(wav_path)
    await store.recordings.add(StoredRecording("CArec1", str(wav_path), 0.1, datetime.now(UTC)))
    cookie = session_cookie(API_TOKEN, time.time())

    status, page, _ = await _get(token_server, "/calls/CArec1", cookie=cookie)
    assert status == 200
    audio = re.search(r'<audio controls[^>]* src="([^"]+)"></audio>', page)
    assert audio is not None and audio.group(1) == "/api/calls/CArec1/recording"
    async with aiohttp.ClientSession() as http:
        async with http.get(token_server.url + audio.group(1),
                            headers={"Cookie": f"{COOKIE}={cookie}"}) as response:
            assert response.status == 200 and response.content_type == "audio/wav"
            assert await response.read() == wav_path.read_bytes()
        async with http.get(token_server.url + audio.group(1)) as response:
            assert response.status == 401  # without the session, the API's own auth
    status, page, _ = await _get(token_server, "/calls/CArec2", cookie=cookie)
    assert status == 200 and "<audio" not in page  # not recorded: no player


async def test_calls_are_found_by_the_number_of_the_other_party(open_server: Server) -> None:
    """The caller's number is kept on the record (not only in flow variables a flow may not
    declare), so a stored call is found by any part of it."""
    assert open_server.deps.store is not None
    record = CallRecord(call_sid="CAbynumber", stream_sid="MZ1", flow="demo_booking",
                        phone="+12125550199")
    record.status = "completed"
    await open_server.deps.store.calls.save(StoredCall.from_record(record))
    stored = await open_server.deps.store.calls.get("CAbynumber")
    assert stored is not None and stored.phone == "+12125550199"
    status, found, _ = await _get(open_server, "/?q=5550199")
    assert status == 200 and 'data-sid="CAbynumber"' in found
    status, missed, _ = await _get(open_server, "/?q=5550100")
    assert 'data-sid="CAbynumber"' not in missed
