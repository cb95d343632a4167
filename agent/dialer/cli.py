"""``slotline call``, ``slotline campaign …`` and ``slotline dnc …``: HTTP clients of a running
``slotline serve`` (hooked up in agent/cli.py).

Campaigns run inside the server — they outlive this command, and anyone can watch or pause
one — so these commands only ask the server's API and show what it answers; nothing here
dials. The server is ``--server URL``, else ``SLOTLINE_SERVER_URL``, else
http://127.0.0.1:8080; ``SLOTLINE_API_TOKEN``, when set, goes along as a bearer token.

Exit codes: 0 done; 1 the server refused (its message is printed), the call failed, the
campaign was cancelled, or numbers were rejected; 2 no server, a token missing or refused, an
unreadable file, bad arguments; 3 the call had not settled within ``--timeout``; 130 Ctrl-C
(what runs on the server carries on).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import quote

from slotline.agent.dialer import cli_progress as show

if TYPE_CHECKING:
    import aiohttp

_T = TypeVar("_T")
DEFAULT_SERVER_URL = "http://127.0.0.1:8080"
# A request to a live server answers in milliseconds; an upload of a large contact list or a
# download of its results is parsed or built in one go, so it gets longer.
_REQUEST_TIMEOUT_S = 30.0
_TRANSFER_TIMEOUT_S = 300.0
_SERVER_NOTE = ("These commands talk to a running `slotline serve` (--server URL, else "
                f"SLOTLINE_SERVER_URL, else {DEFAULT_SERVER_URL}; SLOTLINE_API_TOKEN is sent "
                "as a bearer token when set).")


@dataclass(frozen=True, slots=True)
class Pace:
    """How often the commands ask and print; tests pass a faster one."""

    call_poll_s: float = 0.5  # a status change shows within half a second
    campaign_poll_s: float = 1.0  # the progress line's refresh
    plain_every_s: float = 10.0  # progress lines when stdout is a file: a log, not a flood
    call_appear_grace_s: float = 5.0  # a new call may not be in the call log at once


def _argument_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """argparse prints an ArgumentTypeError's own message (a ValueError only as 'invalid')."""
    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def add_parser(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", metavar="URL",
                        help=f"the running server (default: SLOTLINE_SERVER_URL, else "
                             f"{DEFAULT_SERVER_URL})")
    call = sub.add_parser("call", parents=[common], epilog=_SERVER_NOTE,
                          help="place one outbound call through a running server")
    call.add_argument("to", metavar="TO", help="the number to call, e.g. +15551234567")
    call.add_argument("--flow", required=True, help="the flow the call follows")
    call.add_argument("--var", dest="variables", action="append", default=[],
                      metavar="NAME=VALUE", type=_argument_type(show.parse_variable),
                      help="a flow variable (repeat for more)")
    call.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                      help="follow the call until its outcome is settled (default)")
    call.add_argument("--timeout", dest="timeout_s", type=_argument_type(show.parse_duration_s),
                      default=600.0, help="give up waiting after this long (default 600 s)")

    campaign = sub.add_parser("campaign", help="dial a contact list from a running server",
                              description=_SERVER_NOTE)
    verbs = campaign.add_subparsers(dest="campaign_command", required=True)
    run = verbs.add_parser("run", parents=[common], epilog=_SERVER_NOTE,
                           help="upload a CSV of contacts and follow the campaign")
    run.add_argument("file", type=Path, help="CSV with a 'phone' column (name, timezone ...)")
    run.add_argument("--flow", required=True, help="the flow every call follows")
    run.add_argument("--cps", type=float, default=1.0, help="calls started per second (1)")
    run.add_argument("--concurrency", type=int, default=10, help="calls at once (10)")
    run.add_argument("--window", default="09:00-20:00",
                     help="local hours of the callee when calls may start (09:00-20:00)")
    run.add_argument("--days", help="days calls may start, e.g. mon-fri (default: every day)")
    run.add_argument("--max-attempts", type=int, default=3, help="tries per contact (3)")
    run.add_argument("--retry-after", dest="retry_after_s", default=7200.0,
                     type=_argument_type(show.parse_duration_s),
                     help="wait before a retry, doubling each time: 90s, 30m, 2h, 1d (2h)")
    run.add_argument("--machine", choices=("hangup", "voicemail"), default="hangup",
                     help="on an answering machine: hang up, or leave --voicemail-message")
    run.add_argument("--voicemail-message", help="what to say to an answering machine")
    run.add_argument("--timezone", help="zone of contacts whose number or row tells none")
    run.add_argument("--region", help="country of numbers written without +, e.g. US")
    run.add_argument("--name", help="a name to tell the campaign by")
    run.add_argument("--no-wait", dest="wait", action="store_false",
                     help="upload and return; follow it later with `campaign status`")
    status = verbs.add_parser("status", parents=[common], help="counts and progress")
    status.add_argument("id")
    status.add_argument("--contacts", action="store_true", help="also list every contact")
    verbs.add_parser("list", parents=[common], help="every campaign on the server")
    for verb, text in (("pause", "stop starting calls (calls under way finish)"),
                       ("resume", "start calling again"), ("cancel", "stop for good")):
        verbs.add_parser(verb, parents=[common], help=text).add_argument("id")
    results = verbs.add_parser("results", parents=[common], help="the results as CSV")
    results.add_argument("id")
    results.add_argument("-o", "--output", type=Path, help="write to FILE (default: stdout)")

    dnc = sub.add_parser("dnc", help="the do-not-call list of a running server",
                         description=_SERVER_NOTE)
    dnc_verbs = dnc.add_subparsers(dest="dnc_command", required=True)
    add = dnc_verbs.add_parser("add", parents=[common], help="numbers never to call")
    add.add_argument("numbers", nargs="*", metavar="NUMBER")
    add.add_argument("--file", type=Path, help="a CSV with a 'phone' column")
    dnc_verbs.add_parser("list", parents=[common], help="every number on the list")
    remove = dnc_verbs.add_parser("remove", parents=[common], help="allow calls to a number")
    remove.add_argument("number", help="the number, e.g. +15551234567")
    remove.add_argument("--region", default="US",
                        help="country of a number written without + (US)")


def run(argv: Sequence[str], *, environ: Mapping[str, str] | None = None,
        out: TextIO | None = None, pace: Pace = Pace()) -> int:
    """``main`` from a command line of these commands alone (``call +1555… --flow x``)."""
    parser = argparse.ArgumentParser(prog="slotline")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return main(parser.parse_args(argv), environ=environ, out=out, pace=pace)


def main(args: argparse.Namespace, *, environ: Mapping[str, str] | None = None,
         out: TextIO | None = None, pace: Pace = Pace()) -> int:
    """Run one command; returns the exit code (see the module doc)."""
    env = os.environ if environ is None else environ
    server = (args.server or env.get("SLOTLINE_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/")
    if not server.startswith(("http://", "https://")):
        print(f"slotline: --server wants a URL such as {DEFAULT_SERVER_URL}", file=sys.stderr)
        return 2
    if args.command == "dnc" and args.dnc_command == "add" and (
            bool(args.numbers) == (args.file is not None)):
        print("slotline: dnc add wants NUMBER... or --file FILE.csv (one of them)",
              file=sys.stderr)
        return 2
    try:  # before any request: a typo in the path should not need a server to find
        upload = args.file.read_bytes() if getattr(args, "file", None) is not None else None
    except OSError as exc:
        print(f"slotline: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    token = env.get("SLOTLINE_API_TOKEN", "").strip() or None  # `$(cat file)` keeps no \n
    command = _Command(_Api(server, token),
                       sys.stdout if out is None else out, pace, upload)
    try:
        return asyncio.run(command.dispatch(args))
    except CliError as exc:
        print(f"slotline: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # the command has said what goes on on the server
        return 130


class CliError(Exception):
    """What ends a command early: a message for the user, and the exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json_object(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise CliError(f"the server did not answer with JSON: {self.text[:200]!r}", 1)
        return data


class _Api:
    """The server's HTTP API. Every way a request fails becomes a ``CliError`` here, once."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self._base_url = base_url
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> _Api:
        import aiohttp  # here: building the `slotline` parser need not load the client

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self._session = aiohttp.ClientSession(headers=headers)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, *, allow: Collection[int] = (), long: bool = False) -> _Reply:
        return await self.request("GET", path, allow=allow, long=long)

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      json_body: object = None, csv_body: bytes | None = None,
                      allow: Collection[int] = (), long: bool = False) -> _Reply:
        """The reply; ``CliError`` if there is none, or it is an error not in ``allow``."""
        import aiohttp

        assert self._session is not None, "use the API as `async with`"
        timeout_s = _TRANSFER_TIMEOUT_S if long else _REQUEST_TIMEOUT_S
        try:
            async with self._session.request(
                method, self._base_url + path, params=params, json=json_body, data=csv_body,
                headers={"Content-Type": "text/csv"} if csv_body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                reply = _Reply(response.status, await response.read())
        except TimeoutError:
            raise CliError(f"the server at {self._base_url} did not answer within "
                           f"{timeout_s:g} s", 2) from None
        except aiohttp.ClientSSLError as exc:
            raise CliError(f"TLS with {self._base_url} failed: {exc}", 2) from None
        except aiohttp.ClientConnectorError:
            raise CliError(f"no server at {self._base_url} (start one with `slotline serve`, "
                           "or pass --server)", 2) from None
        except aiohttp.ClientError as exc:
            raise CliError(f"lost the server at {self._base_url}: {exc}", 2) from None
        if reply.status == 401:
            refused = " (the one set was refused)" if self._token else ""
            raise CliError(f"the server wants SLOTLINE_API_TOKEN{refused}", 2)
        if reply.status >= 400 and reply.status not in allow:
            raise CliError(_server_message(reply), 1)
        return reply


def _server_message(reply: _Reply) -> str:
    """The server's ``{"error": …}``, else its text as it is."""
    try:
        data = json.loads(reply.body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return f"{data['error']} (HTTP {reply.status})"
    return f"{reply.text.strip() or 'no message'} (HTTP {reply.status})"


class _Command:
    def __init__(self, api: _Api, out: TextIO, pace: Pace, upload: bytes | None) -> None:
        self._api = api
        self._out = out
        self._pace = pace
        self._upload = upload  # the CSV file of `campaign run` or `dnc add --file`

    def _print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self._out)

    async def dispatch(self, args: argparse.Namespace) -> int:
        async with self._api:
            if args.command == "call":
                return await self._call(args)
            if args.command == "dnc":
                return await self._dnc(args)
            verb = args.campaign_command
            if verb == "run":
                return await self._campaign_run(args)
            if verb == "list":
                return await self._campaign_list()
            path = f"/api/campaigns/{quote(args.id, safe='')}"
            if verb == "status":
                data = (await self._api.get(path)).json_object()
                self._print(*show.campaign_status_lines(data, with_contacts=args.contacts))
                return 0
            if verb == "results":
                return await self._campaign_results(path, args.output)
            reply = await self._api.request("POST", f"{path}/{verb}")
            data = reply.json_object()
            self._print(f"campaign {data.get('id', args.id)}: {data.get('status', verb)}")
            return 0

    # ---- call ---------------------------------------------------------------------------------

    async def _call(self, args: argparse.Namespace) -> int:
        body = {"to": args.to, "flow": args.flow, "variables": dict(args.variables)}
        placed = (await self._api.request("POST", "/api/calls", json_body=body)).json_object()
        sid = str(placed.get("call_sid", ""))
        self._print(f"calling {show.mask_phone(args.to)}: call {sid}, attempt "
                    f"{placed.get('attempt_id', '?')}")
        if not args.wait:
            self._print(f"not waiting; its log: GET /api/calls/{sid}")
            return 0
        try:
            view = await self._follow_call(sid, args.timeout_s)
        except asyncio.CancelledError:
            print(f"\nslotline: stopped watching; call {sid} goes on (its log: "
                  f"GET /api/calls/{sid})", file=sys.stderr)
            raise
        if view is None:
            print(f"slotline: call {sid} had not settled after {args.timeout_s:g} s; it goes "
                  f"on on the server (GET /api/calls/{sid})", file=sys.stderr)
            return 3
        self._print(*show.call_summary(view))
        return 1 if view.outcome == "failed" else 0

    async def _follow_call(self, sid: str, timeout_s: float) -> show.CallView | None:
        """Print each change until the outcome is settled; None after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        before: show.CallView | None = None
        while True:
            reply = await self._api.get(f"/api/calls/{quote(sid, safe='')}", allow=(404,))
            elapsed_s = loop.time() - started
            if reply.status == 404 and elapsed_s > self._pace.call_appear_grace_s:
                raise CliError(f"the server does not know call {sid}", 1)
            if reply.status != 404:
                view = show.call_view(reply.json_object())
                self._print(*(f"  {elapsed_s:6.1f}s  {line}"
                              for line in show.call_changes(before, view)))
                if view.settled:
                    return view
                before = view
            if elapsed_s >= timeout_s:
                return None
            await asyncio.sleep(self._pace.call_poll_s)

    # ---- campaigns ----------------------------------------------------------------------------

    async def _campaign_run(self, args: argparse.Namespace) -> int:
        params = {"flow": args.flow, "cps": f"{args.cps:g}", "concurrency": str(args.concurrency),
                  "window": args.window, "max_attempts": str(args.max_attempts),
                  "retry_after_s": f"{args.retry_after_s:g}", "machine": args.machine}
        for key in ("days", "voicemail_message", "timezone", "region", "name"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
        created = (await self._api.request(
            "POST", "/api/campaigns", params=params, csv_body=self._upload, long=True
        )).json_object()
        campaign_id = str(created.get("id", ""))
        rejected = show.rejected_rows(created)
        contacts = created.get("contacts")
        self._print(f"campaign {campaign_id}: "
                    f"{show.plural(contacts if isinstance(contacts, int) else 0, 'contact')} "
                    f"to call, {show.plural(len(rejected), 'row')} rejected")
        self._print(*(f"  {line}" for line in show.rejected_lines(rejected)))
        if not args.wait:
            self._print(f"follow it with `slotline campaign status {campaign_id}`")
            return 0
        view = await self._watch_campaign(campaign_id)
        self._print(show.campaign_heading(view), *show.counts_table(view),
                    f"results: slotline campaign results {view.id} -o results.csv")
        return 0 if view.status == "done" else 1

    async def _watch_campaign(self, campaign_id: str) -> show.CampaignView:
        display = show.ProgressDisplay(self._out, plain_every_s=self._pace.plain_every_s)
        path = f"/api/campaigns/{quote(campaign_id, safe='')}"
        try:
            while True:
                view = show.campaign_view((await self._api.get(path)).json_object())
                display.show(view)
                if view.finished:
                    return view
                await asyncio.sleep(self._pace.campaign_poll_s)
        except asyncio.CancelledError:
            display.end_line()
            print(f"slotline: stopped watching; campaign {campaign_id} goes on running on the "
                  f"server (pause it with `slotline campaign pause {campaign_id}`)",
                  file=sys.stderr)
            raise
        finally:
            display.end_line()

    async def _campaign_list(self) -> int:
        data = (await self._api.get("/api/campaigns")).json_object()
        rows = data.get("campaigns")
        views = [show.campaign_view(row) for row in rows or () if isinstance(row, Mapping)]
        self._print(*show.campaign_table(views))
        return 0

    async def _campaign_results(self, path: str, output: Path | None) -> int:
        reply = await self._api.get(f"{path}/results.csv", long=True)
        if output is None:
            self._out.write(reply.text)
            return 0
        try:
            await asyncio.to_thread(output.write_bytes, reply.body)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}", 2) from None
        rows = sum(1 for _ in csv.reader(io.StringIO(reply.text))) - 1  # less the header
        self._print(f"wrote {show.plural(max(rows, 0), 'row')} to {output}")
        return 0

    # ---- do-not-call list ---------------------------------------------------------------------

    async def _dnc(self, args: argparse.Namespace) -> int:
        verb = args.dnc_command
        if verb == "list":
            data = (await self._api.get("/api/dnc")).json_object()
            self._print(*show.dnc_table(data.get("entries")))
            return 0
        if verb == "remove":
            number = show.e164(args.number, args.region)
            await self._api.request("DELETE", f"/api/dnc/{quote(number, safe='')}")
            self._print(f"removed {number} from the do-not-call list")
            return 0
        if self._upload is not None:
            reply = await self._api.request("POST", "/api/dnc", csv_body=self._upload, long=True)
        else:
            reply = await self._api.request("POST", "/api/dnc",
                                            json_body={"phones": list(args.numbers)})
        data = reply.json_object()
        rejected = show.rejected_rows(data)
        self._print(f"added {data.get('added', 0)} to the do-not-call list",
                    *(f"  rejected {line}" for line in show.rejected_lines(rejected)))
        return 1 if rejected else 0
