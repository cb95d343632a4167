"""The HTTP surface: Twilio webhooks, the media WebSocket, health, metrics and the call log API.

``build_app`` takes everything it needs explicitly (settings, secrets, providers), so tests and
the demo build the same application the server runs.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from slotline.agent import tracing
from slotline.agent.call.calllog import CallLog
from slotline.agent.call.session import CallSession, SessionConfig, SessionDeps
from slotline.agent.call.turns import TurnConfig
from slotline.agent.config import Secrets, Settings
from slotline.agent.server.call_api import call_json, calls_json
from slotline.agent.server.event_loop import loop_name
from slotline.agent.server.forwarded import Origin, origin_of, trusted_networks
from slotline.agent.server.media_gate import ReplayingWebSocket, admit
from slotline.agent.server.metrics import Metrics
from slotline.agent.server.stream_token import PARAMETER, StreamTokens
from slotline.providers.base import AsyncResource
from slotline.providers.telephony.twilio_webhook import (
    BadForm,
    parse_form,
    signature_valid,
    stream_twiml,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AppContext:
    settings: Settings
    secrets: Secrets
    deps: SessionDeps
    session_config: SessionConfig
    # per-call media stream tokens; None (no Twilio auth token): streams are not checked
    stream_tokens: StreamTokens | None = None


CONTEXT: web.AppKey[AppContext] = web.AppKey("slotline_context", AppContext)


def session_config(settings: Settings) -> SessionConfig:
    turn = settings.turn
    return SessionConfig(
        turn=TurnConfig(
            min_speech_ms=turn.min_speech_ms,
            end_silence_ms=turn.end_silence_ms,
            short_silence_ms=turn.short_silence_ms,
            long_silence_ms=turn.long_silence_ms,
            bargein_min_speech_ms=turn.bargein_min_speech_ms,
            max_turn_ms=turn.max_turn_s * 1000,
            complete_silence_ms=turn.complete_silence_ms,
            unanswered_silence_ms=turn.unanswered_silence_ms,
            partial_silence_ms=turn.partial_silence_ms,
            speculate_ms=turn.speculate_ms,
            model_end_threshold=turn.model_end_threshold,
        ),
        outbound_lead_ms=turn.outbound_lead_ms,
        early_llm_ms=turn.early_llm_ms,
        filler_after_ms=turn.filler_after_ms,
        flow_name=settings.flow,
    )


def build_app(settings: Settings, secrets: Secrets, deps: SessionDeps) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    auth_token = secrets.twilio_auth_token
    tokens = (StreamTokens.for_auth_token(auth_token.get_secret_value())
              if auth_token is not None else None)
    app[CONTEXT] = AppContext(settings, secrets, deps, session_config(settings), tokens)
    app.cleanup_ctx.append(_tracing)  # first in, last out: spans until every resource closed
    app.cleanup_ctx.append(_resources)
    app.add_routes(
        [
            web.post("/twilio/voice", _voice),
            web.get("/twilio/media", _media),
            web.post("/twilio/status", _status_callback),
            web.post("/twilio/amd", _amd_callback),
            web.post("/twilio/stream-status", _status_callback),
            web.get("/healthz", _healthz),
            web.get("/readyz", _readyz),
            web.get("/metrics", _metrics),
            web.get("/api/calls", _list_calls),
            web.get("/api/calls/{call_sid}", _get_call),
            web.get("/api/calls/{call_sid}/recording", _get_recording),
            web.get("/api/bookings", _list_bookings),
            web.get("/api/bookings/{booking_id}", _get_booking),
        ]
    )
    if deps.dialer is not None and deps.store is not None:
        from slotline.agent.dialer.api import DialerApi, add_routes

        add_routes(app, DialerApi(deps.store, deps.dialer, region=settings.dialer.region))
    if deps.store is not None:
        from slotline.agent.server.waitlist_api import WaitlistApi
        from slotline.agent.server.waitlist_api import add_routes as add_waitlist_routes
        from slotline.agent.waitlist import WaitlistEvents

        add_waitlist_routes(app, WaitlistApi(
            deps.store, WaitlistEvents.from_settings(settings, secrets)))
    from slotline.agent.console import add_console_routes  # here: the console imports this module

    add_console_routes(app)
    return app


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    """OpenTelemetry spans while the server runs, when configured (``agent.tracing``); the
    standard OTEL_* variables come from this process's environment."""
    async with tracing.configured(app[CONTEXT].settings.tracing, os.environ):
        yield


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Start the providers' long-lived resources before serving; close them at shutdown."""
    started: list[AsyncResource] = []
    try:
        for resource in app[CONTEXT].deps.resources:
            await resource.start()
            started.append(resource)
        yield
    finally:
        for resource in reversed(started):
            await resource.aclose()


# ---- Twilio ----------------------------------------------------------------------------------


_PLAIN_SCHEME = {"https": "http", "wss": "ws"}


def _origin(request: web.Request) -> Origin:
    """Scheme and host the client used: a trusted proxy's forwarding headers (TLS ended in
    front of us), else what this socket saw."""
    own = Origin("https" if request.secure else "http", request.host)
    trusted = trusted_networks(request.app[CONTEXT].settings.server.trusted_proxies)
    return origin_of(request.remote, request.headers, trusted, own)


def _public_url(request: web.Request, scheme: str) -> str:
    """The URL Twilio used for this request (it is what Twilio signed)."""
    public = request.app[CONTEXT].settings.server.public_url
    if public:
        return f"{scheme}://{public}{request.path_qs}"
    origin = _origin(request)
    if origin.scheme != "https":
        scheme = _PLAIN_SCHEME[scheme]
    return f"{scheme}://{origin.host}{request.raw_path}"


def _auth_token(request: web.Request) -> str | None:
    token = request.app[CONTEXT].secrets.twilio_auth_token
    return token.get_secret_value() if token is not None else None


async def _verify_twilio(request: web.Request, scheme: str) -> Mapping[str, str]:
    """Form parameters of a Twilio request; 403 if an auth token is set and the signature is bad."""
    params: dict[str, str] = {}
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        # Parsed here, not by ``request.post()``: that raises (a 500 with a traceback) on bytes
        # that are not UTF-8 or on an unknown charset, before the signature could be checked.
        try:
            params = parse_form(await request.read())
        except BadForm as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    token = _auth_token(request)
    if token is None:
        return params
    url = _public_url(request, scheme)
    if not signature_valid(token, url, params, request.headers.get("X-Twilio-Signature")):
        log.warning("forged or unsigned Twilio request to %s", request.path)
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature")
    return params


async def _voice(request: web.Request) -> web.Response:
    params = await _verify_twilio(request, "https")
    ctx = request.app[CONTEXT]
    public = ctx.settings.server.public_url
    if public:
        stream_url = f"wss://{public}/twilio/media"
        status_url: str | None = f"https://{public}/twilio/stream-status"
    else:
        origin = _origin(request)
        scheme = "wss" if origin.scheme == "https" else "ws"
        stream_url = f"{scheme}://{origin.host}/twilio/media"
        status_url = None
    if "attempt" in request.query:
        return await _outbound_voice(request, params, stream_url, status_url)
    log.info("inbound call call_sid=%s", params.get("CallSid", "-"))
    stream_params = {"flow": ctx.settings.flow}
    # The caller's number, so a flow can text them or find their booking (outbound: the callee).
    outbound = params.get("Direction", "inbound").startswith("outbound")
    caller = params.get("To" if outbound else "From", "")
    if caller:
        stream_params["user_phone"] = caller
    if ctx.stream_tokens is not None:
        stream_params[PARAMETER] = ctx.stream_tokens.issue(params.get("CallSid", ""))
    twiml = stream_twiml(stream_url, stream_params, status_callback=status_url)
    return web.Response(text=twiml, content_type="text/xml")


async def _outbound_voice(
    request: web.Request, params: Mapping[str, str], stream_url: str, status_url: str | None
) -> web.Response:
    """An outbound call was answered: the TwiML of its attempt (flow and contact variables)."""
    from slotline.agent.dialer.twiml import outbound_twiml

    ctx = request.app[CONTEXT]
    store = ctx.deps.store
    attempt_id, call_sid = request.query["attempt"], params.get("CallSid", "")
    if store is None or not call_sid or not await store.attempts.bind_sid(attempt_id, call_sid):
        log.warning("outbound TwiML for an unknown attempt call_sid=%s", call_sid or "-")
        raise web.HTTPNotFound(text="no such call attempt")
    attempt = await store.attempts.get(attempt_id)
    assert attempt is not None
    log.info("outbound call answered call_sid=%s attempt=%s", call_sid, attempt_id)
    token = ctx.stream_tokens.issue(call_sid) if ctx.stream_tokens is not None else ""
    twiml = outbound_twiml(stream_url, attempt, status_url, token=token)
    return web.Response(text=twiml, content_type="text/xml")


async def _media(request: web.Request) -> web.WebSocketResponse:
    await _verify_twilio(request, "wss")
    ctx = request.app[CONTEXT]
    ws = ReplayingWebSocket(max_msg_size=ctx.settings.server.max_message_bytes)
    await ws.prepare(request)
    if ctx.stream_tokens is not None:
        # The upgrade's signature is the same for every call: the start must name a call we
        # answered, with its single-use token (agent.server.stream_token).
        store = ctx.deps.store
        shared = store.stream_nonces if store is not None else None
        if await admit(ws, ctx.stream_tokens, ctx.deps.metrics, shared) is not None:
            return ws
    try:
        await CallSession(ws, ctx.session_config, ctx.deps).run()
    finally:
        await ws.close()
    return ws


async def _status_callback(request: web.Request) -> web.Response:
    params = await _verify_twilio(request, "https")
    call_sid = params.get("CallSid", "")
    record = request.app[CONTEXT].deps.call_log.get(call_sid)
    status = params.get("CallStatus")
    if record is not None and status in {"completed", "busy", "failed", "no-answer", "canceled"}:
        record.status = "completed" if status == "completed" else "failed"
    log.info("twilio callback %s call_sid=%s status=%s", request.path, call_sid or "-", status)
    dialer = request.app[CONTEXT].deps.dialer
    if dialer is not None and request.path == "/twilio/status":
        await dialer.on_status(params)
    return web.Response(status=204)


async def _amd_callback(request: web.Request) -> web.Response:
    """Async answering-machine detection: the dialer hangs up on a machine or leaves the
    campaign's voicemail (see ``agent.dialer.engine``)."""
    params = await _verify_twilio(request, "https")
    log.info("twilio AMD call_sid=%s answered_by=%s", params.get("CallSid", "-"),
             params.get("AnsweredBy", "-"))
    dialer = request.app[CONTEXT].deps.dialer
    if dialer is not None:
        await dialer.on_amd(params)
    return web.Response(status=204)


# ---- health and metrics ---------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    # pid: which process answered (``serve --workers N`` runs several on one port); event_loop:
    # what it runs on (``server.event_loop``), for benchmark reports
    return web.json_response({"status": "ok", "pid": os.getpid(),
                              "event_loop": loop_name(asyncio.get_running_loop())})


async def _readyz(request: web.Request) -> web.Response:
    """Ready when the store answers (providers were started before the server listened)."""
    store = request.app[CONTEXT].deps.store
    if store is not None:
        try:
            await store.ping()
        except Exception as exc:  # any database failure means: send calls elsewhere
            log.warning("not ready: store unreachable: %s", type(exc).__name__)
            return web.json_response({"status": "unavailable", "store": "unreachable"},
                                     status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    if request.app[CONTEXT].settings.server.metrics_auth:
        _check_api_auth(request)
    text = await request.app[CONTEXT].deps.metrics.exposition()
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


# ---- API ---------------------------------------------------------------------------------------


# Headers a proxy, tunnel or CDN adds: a request carrying any of them came from elsewhere,
# whatever its TCP peer (plus every ``X-Forwarded-*``, checked by prefix).
_FORWARDING_HEADERS = frozenset({
    "forwarded", "via", "x-real-ip", "x-client-ip", "x-cluster-client-ip", "x-original-host",
    "x-original-forwarded-for", "cf-connecting-ip", "cf-connecting-ipv6", "true-client-ip",
    "fastly-client-ip", "x-appengine-user-ip", "x-azure-clientip", "x-proxyuser-ip",
})


def _check_api_auth(request: web.Request) -> None:
    ctx = request.app[CONTEXT]
    token = ctx.secrets.slotline_api_token
    if token is None:
        if ctx.settings.server.public_url or not _is_loopback(ctx.settings.server.host):
            raise web.HTTPUnauthorized(text="set SLOTLINE_API_TOKEN to use the API off loopback")
        if not _from_this_machine(request):
            raise web.HTTPUnauthorized(text="without SLOTLINE_API_TOKEN the API answers only "
                                       "direct requests from this machine")
        return
    expected = f"Bearer {token.get_secret_value()}"
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPUnauthorized(text="missing or wrong bearer token")


Part = TypeVar("Part")


def api_guard(
    key: web.AppKey[Part],
) -> Callable[[Callable[[web.Request, Part], Awaitable[web.StreamResponse]]], Handler]:
    """Routes of a part of the ``/api`` kept in the application under ``key`` (the dialer's,
    the waitlist's): each request passes ``_check_api_auth`` first, then the handler is given
    the part with the request."""

    def guard(handler: Callable[[web.Request, Part], Awaitable[web.StreamResponse]]) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            _check_api_auth(request)
            return await handler(request, request.app[key])

        return guarded

    return guard


def _from_this_machine(request: web.Request) -> bool:
    """Open only to this machine: asked from loopback, for a loopback name, with no proxy in
    between. A tunnel or reverse proxy on this machine connects from loopback too (it would
    publish the call log) — it shows in its forwarding headers; a web page that rebinds its
    own DNS name to 127.0.0.1 shows in the Host header (its name, not ours)."""
    if not _is_loopback(request.remote or ""):
        return False
    if not _is_loopback(_host_name(request.headers.get("Host", ""))):
        return False
    return not any(
        header.lower() in _FORWARDING_HEADERS or header.lower().startswith("x-forwarded-")
        for header in request.headers
    )


def _host_name(host: str) -> str:
    """The name in a Host header, without its port (``[::1]:8080`` → ``::1``)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _list_calls(request: web.Request) -> web.Response:
    _check_api_auth(request)
    limit, offset = _page(request)
    return web.json_response(await calls_json(request.app[CONTEXT].deps, limit, offset))


async def _get_call(request: web.Request) -> web.Response:
    _check_api_auth(request)
    body = await call_json(request.app[CONTEXT].deps, request.match_info["call_sid"])
    if body is None:
        raise web.HTTPNotFound(text="no such call")
    return web.json_response(body)


async def _get_recording(request: web.Request) -> web.StreamResponse:
    """The call's recording (agent.server.recording_store): a stereo WAV, the caller left."""
    _check_api_auth(request)
    recordings = request.app[CONTEXT].deps.recordings
    path = await recordings.path_of(request.match_info["call_sid"]) if recordings else None
    if path is None:
        raise web.HTTPNotFound(text="no recording of this call")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def _page(request: web.Request) -> tuple[int, int]:
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
        offset = max(int(request.query.get("offset", "0")), 0)
    except ValueError:
        raise web.HTTPBadRequest(text="limit and offset must be integers") from None
    return limit, offset


async def _list_bookings(request: web.Request) -> web.Response:
    _check_api_auth(request)
    store = request.app[CONTEXT].deps.store
    limit, offset = _page(request)
    bookings = await store.bookings.recent(limit, offset) if store is not None else []
    return web.json_response({"bookings": [b.as_json() for b in bookings]})


async def _get_booking(request: web.Request) -> web.Response:
    _check_api_auth(request)
    store = request.app[CONTEXT].deps.store
    booking = await store.bookings.get(request.match_info["booking_id"]) if store else None
    if booking is None:
        raise web.HTTPNotFound(text="no such booking")
    return web.json_response(booking.as_json())


__all__ = ["CONTEXT", "AppContext", "CallLog", "Metrics", "api_guard", "build_app",
           "session_config"]
