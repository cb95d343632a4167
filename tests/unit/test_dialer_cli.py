"""``slotline call / campaign / dnc`` against a small fake of the server's API on a real socket.

The fake runs in a thread of its own (the commands run their own event loop with
``asyncio.run``) and answers the HTTP contract with canned, stateful replies: each poll of a
call or a campaign moves it one step on.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from slotline.agent.dialer.cli import Pace, run
from slotline.agent.dialer.cli_progress import format_duration, mask_phone, parse_duration_s

FAST = Pace(call_poll_s=0.01, campaign_poll_s=0.01, plain_every_s=60.0,
            call_appear_grace_s=0.2)
RESULTS_CSV = "line,phone,name,outcome\n2,+15551234567,Maria,booked\n4,+15557654321,Ann,declined\n"
CONTACTS_CSV = b"phone,name\n+15551234567,Maria\n+1 555 ...,Bob\n+15557654321,Ann\n"


def _outbound(sid: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"call_sid": sid, "number": "+15551234567", "started_at": "2026-12-01T10:00:00Z",
            "status": status, "answered_by": fields.get("answered_by"),
            "machine_action": None, "duration_s": fields.get("duration_s"),
            "outcome": fields.get("outcome"), "reason": fields.get("reason", ""),
            "booking_id": fields.get("booking_id"), "events": [],
            "settled_at": "2026-12-01T10:01:00Z" if "outcome" in fields else None}


# What each poll of a call shows, by flow; the last step repeats.
CALL_STEPS: dict[str, list[dict[str, Any]]] = {
    "booking": [{"status": "queued"}, {"status": "ringing"},
                {"status": "in-progress", "answered_by": "human"},
                {"status": "completed", "answered_by": "human", "outcome": "booked",
                 "booking_id": "bk_7", "duration_s": 42.0}],
    "broken": [{"status": "queued"},
               {"status": "failed", "outcome": "failed",
                "reason": "Twilio ended the call as failed"}],
    "endless": [{"status": "ringing"}],
}


# A campaign of two contacts as four polls see it: (pending, dialing, booked, declined, dialed).
CAMPAIGN_STEPS = [(2, 0, 0, 0, 0), (1, 1, 0, 0, 1), (0, 1, 1, 0, 2), (0, 0, 1, 1, 3)]


def _campaign(poll: int, campaign_id: str = "cmp_1") -> dict[str, Any]:
    """The campaign after ``poll`` polls: running for three, then done ("cmp_forever" never
    ends)."""
    done = poll >= len(CAMPAIGN_STEPS) - 1 and campaign_id == "cmp_1"
    pending, dialing, booked, declined, dialed = CAMPAIGN_STEPS[min(poll, 3 if done else 2)]
    return {
        "id": campaign_id, "name": "June list", "status": "done" if done else "running",
        "flow": "booking", "settings": {"cps": 1.0, "concurrency": 10},
        "counts": {"pending": pending, "dialing": dialing, "booked": booked,
                   "declined": declined, "no_answer": 0, "busy": 0, "voicemail": 0,
                   "failed": 0, "do_not_call": 0, "invalid": 0},
        "progress": {"contacts": 2, "dialed": dialed, "answered": booked + declined,
                     "remaining": pending + dialing, "dials_per_minute": 6.0,
                     "eta_s": None if done else 20.0},
        "contacts": [{"line": 2, "phone": "+15551234567", "name": "Maria", "outcome": "booked",
                      "reason": "", "attempts": [{}], "booking_id": "bk_7"}],
    }


@dataclass
class FakeSlotline:
    """The server's API as the dialer commands use it, in memory."""

    token: str | None = None
    url: str = ""
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    call_polls: dict[str, int] = field(default_factory=dict)
    campaign_polls: int = 0
    campaign_query: dict[str, str] = field(default_factory=dict)
    campaign_body: bytes = b""
    dnc: dict[str, str] = field(default_factory=lambda: {"+15550001111": "api"})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.post("/api/calls", self._place_call),
            web.get("/api/calls/{sid}", self._get_call),
            web.post("/api/campaigns", self._create_campaign),
            web.get("/api/campaigns", self._list_campaigns),
            web.get("/api/campaigns/{id}", self._get_campaign),
            web.get("/api/campaigns/{id}/results.csv", self._results),
            web.post("/api/campaigns/{id}/{verb}", self._campaign_verb),
            web.get("/api/dnc", self._list_dnc),
            web.post("/api/dnc", self._add_dnc),
            web.delete("/api/dnc/{phone}", self._remove_dnc),
        ])
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text="missing or wrong bearer token")
        response: web.StreamResponse = await handler(request)
        return response

    async def _place_call(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["to"] in self.dnc:
            return web.json_response({"error": "the number is on the do-not-call list"},
                                     status=409)
        sid = f"CA{len(self.calls) + 1}"
        self.calls[sid] = body
        return web.json_response({"call_sid": sid, "attempt_id": "att_1"}, status=201)

    async def _get_call(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if sid not in self.calls:
            raise web.HTTPNotFound(text="no such call")
        steps = CALL_STEPS[self.calls[sid]["flow"]]
        poll = self.call_polls.get(sid, 0)
        self.call_polls[sid] = poll + 1
        step = dict(steps[min(poll, len(steps) - 1)])
        return web.json_response({"call_sid": sid, "status": step["status"],
                                  "outbound": _outbound(sid, step.pop("status"), **step)})

    async def _create_campaign(self, request: web.Request) -> web.Response:
        assert request.content_type == "text/csv"
        self.campaign_query = dict(request.query)
        self.campaign_body = await request.read()
        campaign_id = "cmp_forever" if request.query["flow"] == "forever" else "cmp_1"
        return web.json_response({"id": campaign_id, "contacts": 2, "rejected": [
            {"line": 3, "phone": "+1 555 ...", "reason": "not a phone number"}]}, status=201)

    async def _list_campaigns(self, request: web.Request) -> web.Response:
        return web.json_response({"campaigns": [_campaign(1)]})

    async def _get_campaign(self, request: web.Request) -> web.Response:
        campaign_id = request.match_info["id"]
        if campaign_id not in ("cmp_1", "cmp_forever"):
            raise web.HTTPNotFound(text="no such campaign")
        self.campaign_polls += 1
        return web.json_response(_campaign(self.campaign_polls - 1, campaign_id))

    async def _results(self, request: web.Request) -> web.Response:
        return web.Response(text=RESULTS_CSV, content_type="text/csv")

    async def _campaign_verb(self, request: web.Request) -> web.Response:
        if request.match_info["verb"] == "resume":
            return web.json_response({"error": "campaign cmp_1 is done"}, status=409)
        status = {"pause": "paused", "cancel": "cancelled"}[request.match_info["verb"]]
        return web.json_response({"id": "cmp_1", "status": status})

    async def _list_dnc(self, request: web.Request) -> web.Response:
        return web.json_response({"entries": [
            {"phone": phone, "source": source, "call_sid": None, "added_at": "2026-12-01"}
            for phone, source in self.dnc.items()]})

    async def _add_dnc(self, request: web.Request) -> web.Response:
        if request.content_type == "text/csv":
            rows = list(csv.DictReader(io.StringIO(await request.text())))
            lines = [(n + 2, row["phone"]) for n, row in enumerate(rows)]
        else:
            lines = [(n + 1, p) for n, p in enumerate((await request.json())["phones"])]
        rejected = [{"line": n, "phone": p, "reason": "not a phone number"}
                    for n, p in lines if not p.startswith("+")]
        self.dnc.update({p: "cli" for _, p in lines if p.startswith("+")})
        return web.json_response({"added": len(lines) - len(rejected), "rejected": rejected})

    async def _remove_dnc(self, request: web.Request) -> web.Response:
        if self.dnc.pop(request.match_info["phone"], None) is None:
            raise web.HTTPNotFound(text="not on the do-not-call list")
        return web.json_response({"removed": request.match_info["phone"]})


@pytest.fixture
def fake() -> Iterator[FakeSlotline]:
    server = FakeSlotline()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-slotline", daemon=True)
    thread.start()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(server.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def slotline(fake: FakeSlotline, *argv: str, token: str | None = None, **kw: Any) -> int:
    environ = {"SLOTLINE_SERVER_URL": fake.url}
    if token:
        environ["SLOTLINE_API_TOKEN"] = token
    return run(argv, environ=environ, pace=FAST, **kw)


class TerminalOut(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---- call -------------------------------------------------------------------------------------


def test_call_follows_the_call_until_booked(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = slotline(fake, "call", "+15551234567", "--flow", "booking")
    out = capsys.readouterr().out
    assert code == 0
    changes = [line.split()[-1] for line in out.splitlines() if line.startswith("   ")]
    assert changes[:3] == ["queued", "ringing", "in-progress"]
    assert "answered by a person" in out
    assert "outcome      booked" in out
    assert "booked       yes, booking bk_7" in out
    assert "duration     42s" in out
    assert "+1 *** *** 4567" in out
    assert "5551234567" not in out


def test_a_failed_call_exits_1(fake: FakeSlotline, capsys: pytest.CaptureFixture[str]) -> None:
    assert slotline(fake, "call", "+15551234567", "--flow", "broken") == 1
    assert "failed — Twilio ended the call as failed" in capsys.readouterr().out


def test_a_call_that_does_not_settle_times_out_with_3(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert slotline(fake, "call", "+15551234567", "--flow", "endless", "--timeout", "0.1") == 3
    assert "had not settled after 0.1 s" in capsys.readouterr().err


def test_call_no_wait_returns_at_once(fake: FakeSlotline) -> None:
    assert slotline(fake, "call", "+15551234567", "--flow", "booking", "--no-wait") == 0
    assert fake.call_polls == {}


def test_a_number_on_the_do_not_call_list_is_refused(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert slotline(fake, "call", "+15550001111", "--flow", "booking") == 1
    assert capsys.readouterr().err == (
        "slotline: the number is on the do-not-call list (HTTP 409)\n")


def test_vars_reach_the_server(fake: FakeSlotline) -> None:
    slotline(fake, "call", "+15551234567", "--flow", "booking", "--no-wait",
             "--var", "name=Maria", "--var", "note=a=b", "--var", "empty=")
    assert fake.calls["CA1"]["variables"] == {"name": "Maria", "note": "a=b", "empty": ""}


@pytest.mark.parametrize("bad", ["oops", "=x"])
def test_a_malformed_var_is_a_usage_error(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        slotline(fake, "call", "+15551234567", "--flow", "booking", "--var", bad)
    assert exit_info.value.code == 2
    assert "is not NAME=VALUE" in capsys.readouterr().err
    assert fake.calls == {}


# ---- reaching the server ----------------------------------------------------------------------


def test_no_server_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    assert run(["campaign", "list", "--server", url], environ={}) == 2
    assert capsys.readouterr().err == (
        f"slotline: no server at {url} (start one with `slotline serve`, or pass --server)\n")


def test_a_server_wanting_a_token_exits_2(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.token = "s3cret"
    assert slotline(fake, "campaign", "list") == 2
    assert capsys.readouterr().err == "slotline: the server wants SLOTLINE_API_TOKEN\n"
    assert slotline(fake, "campaign", "list", token="wrong") == 2
    assert "SLOTLINE_API_TOKEN (the one set was refused)" in capsys.readouterr().err
    assert slotline(fake, "campaign", "list", token="s3cret") == 0
    assert "cmp_1" in capsys.readouterr().out


# ---- campaigns --------------------------------------------------------------------------------


def test_campaign_run_reports_rejects_progress_and_a_summary(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes(CONTACTS_CSV)
    code = slotline(fake, "campaign", "run", str(contacts), "--flow", "booking",
                    "--retry-after", "90m", "--days", "mon-fri", "--name", "June list")
    out = capsys.readouterr().out
    assert code == 0
    assert fake.campaign_body == CONTACTS_CSV
    assert fake.campaign_query == {
        "flow": "booking", "cps": "1", "concurrency": "10", "window": "09:00-20:00",
        "max_attempts": "3", "retry_after_s": "5400", "machine": "hangup", "days": "mon-fri",
        "name": "June list"}
    assert "  line 3: +1 555 ... — not a phone number" in out
    # Not a terminal, and polls faster than plain_every_s: the first and the final state only.
    progress = [line for line in out.splitlines() if " dialed " in line]
    assert len(progress) == 2
    assert progress[0].split()[1:4] == ["running", "dialed", "0"]
    assert progress[1].split()[1:4] == ["done", "dialed", "3"]
    assert "campaign cmp_1 (June list): done, flow booking, 2 contacts" in out
    assert "  booked " in out and "  declined " in out
    assert "slotline campaign results cmp_1" in out
    assert "\r" not in out


def test_campaign_progress_is_redrawn_on_a_terminal(
    fake: FakeSlotline, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes(CONTACTS_CSV)
    terminal = TerminalOut()
    assert slotline(fake, "campaign", "run", str(contacts), "--flow", "booking",
                    out=terminal) == 0
    text = terminal.getvalue()
    assert text.count("\rrunning  dialed") == 3
    assert "\rdone  dialed 3" in text
    assert "\ncampaign cmp_1 (June list): done" in text


def test_ctrl_c_leaves_the_campaign_running_and_says_how_to_pause_it(
    fake: FakeSlotline, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes(CONTACTS_CSV)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLOTLINE_")}
    # A shell without job control starts background jobs with SIGINT ignored, and children
    # inherit that (a CI runner may do so): give the command Ctrl-C as a terminal would.
    argv = ["slotline", "campaign", "run", str(contacts), "--flow", "forever",
            "--server", fake.url]
    command = [sys.executable, "-c",
               "import runpy, signal, sys"
               "; signal.signal(signal.SIGINT, signal.default_int_handler)"
               f"; sys.argv = {argv!r}"
               "; runpy.run_module('slotline.agent.cli', run_name='__main__')"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=Path(__file__).parents[2], env=environ) as process:
        stdout, stderr = process.stdout, process.stderr
        assert stdout is not None and stderr is not None
        lines: queue.Queue[str] = queue.Queue()

        def read_lines() -> None:
            for line in stdout:
                lines.put(line)

        reader = threading.Thread(target=read_lines, name="cli-stdout", daemon=True)
        reader.start()
        # generous bounds: this checks what Ctrl-C does, not how fast (a loaded CI box once
        # needed over 5 s to start the interpreter and wind down the loop)
        while " dialed " not in lines.get(timeout=30):  # watching: the first progress line
            pass
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        reader.join(30)
        err = stderr.read()
    assert "campaign cmp_forever goes on running on the server" in err
    assert "`slotline campaign pause cmp_forever`" in err
    assert "Traceback" not in err


def test_campaign_status_list_and_verbs(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert slotline(fake, "campaign", "status", "cmp_1", "--contacts") == 0
    out = capsys.readouterr().out
    assert "campaign cmp_1 (June list): running" in out
    assert "settings:" in out and "+1 *** *** 4567" in out and "5551234567" not in out
    assert slotline(fake, "campaign", "list") == 0
    assert "1/2" in capsys.readouterr().out
    assert slotline(fake, "campaign", "pause", "cmp_1") == 0
    assert capsys.readouterr().out == "campaign cmp_1: paused\n"
    assert slotline(fake, "campaign", "resume", "cmp_1") == 1
    assert capsys.readouterr().err == "slotline: campaign cmp_1 is done (HTTP 409)\n"
    assert slotline(fake, "campaign", "status", "cmp_9") == 1
    assert capsys.readouterr().err == "slotline: no such campaign (HTTP 404)\n"


def test_results_go_to_a_file_or_stdout(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "results.csv"
    assert slotline(fake, "campaign", "results", "cmp_1", "-o", str(target)) == 0
    assert target.read_text() == RESULTS_CSV
    assert capsys.readouterr().out == f"wrote 2 rows to {target}\n"
    assert slotline(fake, "campaign", "results", "cmp_1") == 0
    assert capsys.readouterr().out == RESULTS_CSV


def test_a_missing_contacts_file_needs_no_server(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    assert run(["campaign", "run", str(missing), "--flow", "x"], environ={}) == 2
    assert capsys.readouterr().err.startswith(f"slotline: cannot read {missing}")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), ("7200", 7200.0),
    (" 1.5H ", 5400.0),
])
def test_retry_after_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "h", "-5m", "0", "1w"])
def test_bad_retry_after_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_s(text)


def test_bad_retry_after_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["campaign", "run", "x.csv", "--flow", "f", "--retry-after", "soon"], environ={})
    assert "'soon' is not a duration" in capsys.readouterr().err


def test_masks_and_durations() -> None:
    assert mask_phone("+15551234567") == "+1 *** *** 4567"
    assert mask_phone("+447911123456") == "+44 *** *** 3456"
    assert mask_phone("555-123-4567") == "*** *** 4567"
    assert mask_phone("") == "***"
    assert [format_duration(s) for s in (45, 570, 7500, 97200)] == [
        "45s", "9m30s", "2h05m", "1d03h"]


# ---- do-not-call list -------------------------------------------------------------------------


def test_dnc_add_list_remove(
    fake: FakeSlotline, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert slotline(fake, "dnc", "add", "+15552223333", "call-me-not") == 1
    out = capsys.readouterr().out
    assert out == ("added 1 to the do-not-call list\n"
                   "  rejected line 2: call-me-not — not a phone number\n")
    listing = tmp_path / "dnc.csv"
    listing.write_text("phone\n+15554445555\n")
    assert slotline(fake, "dnc", "add", "--file", str(listing)) == 0
    assert slotline(fake, "dnc", "list") == 0
    out = capsys.readouterr().out
    assert "+15552223333" in out and "+15554445555" in out
    assert slotline(fake, "dnc", "remove", "(555) 222-3333") == 0
    assert capsys.readouterr().out == "removed +15552223333 from the do-not-call list\n"
    assert slotline(fake, "dnc", "remove", "+15552223333") == 1
    assert "not on the do-not-call list (HTTP 404)" in capsys.readouterr().err


def test_dnc_add_wants_numbers_or_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["dnc", "add"], environ={}) == 2
    assert "NUMBER... or --file" in capsys.readouterr().err
