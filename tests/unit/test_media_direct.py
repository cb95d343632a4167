"""Media frames handled where aiohttp parses them (``agent.server.direct_ws``,
``MediaSocket.media_direct``), over real sockets: the same frames, in the same order, the same
refusals as through ``receive``, and the fallback where the socket cannot."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import WSMessage, WSMsgType, web

from slotline.agent.call.media_socket import MediaSocket
from slotline.agent.server.direct_ws import DirectWebSocket
from slotline.agent.server.media_gate import ReplayingWebSocket
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw
from tests.loopback import serving_ws

_CALL: contextvars.ContextVar[str] = contextvars.ContextVar("call", default="none")
SID = "MZ" + "a" * 32
CALL = "CA" + "b" * 32
ACCOUNT = "AC" + "c" * 32


def _frame(n: int) -> bytes:
    return bytes([n % 256]) * 160


def _media(n: int, timestamp_ms: int | None = None) -> str:
    return tw.encode_inbound_media(SID, n + 2, n + 1, 20 * n if timestamp_ms is None else
                                   timestamp_ms, _frame(n))


async def _client(url: str, texts: list[str], *, pause_s: float = 0.0) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for text in texts:
            await ws.send_str(text)
            if pause_s:
                await asyncio.sleep(pause_s)
        await ws.close()


async def _serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                 texts: list[str], *, pause_s: float = 0.0) -> None:
    async with serving_ws(handler, "/ws") as url:
        await _client(url, texts, pause_s=pause_s)
        await asyncio.sleep(0.05)  # the server's last messages


async def test_the_sink_takes_what_it_accepts_and_the_rest_is_received_in_order() -> None:
    offered: list[str] = []
    received: list[str] = []
    taken = {"a", "c", "d"}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = DirectWebSocket()
        await ws.prepare(request)
        assert ws.direct(lambda text: offered.append(text) or text in taken)
        async for msg in ws:
            received.append(msg.data)
        return ws

    await _serve(handler, ["a", "b", "c", "d", "e"], pause_s=0.02)
    assert offered == ["a", "b", "c", "d", "e"]
    assert received == ["b", "e"]


async def test_nothing_overtakes_a_message_waiting_to_be_received() -> None:
    offered: list[str] = []
    received: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = DirectWebSocket()
        await ws.prepare(request)
        ws.direct(lambda text: offered.append(text) or text != "wait")
        await asyncio.sleep(0.2)  # "wait" sits in the queue while the rest arrives
        async for msg in ws:
            received.append(msg.data)
        return ws

    await _serve(handler, ["a", "wait", "b", "c"], pause_s=0.02)
    assert offered == ["a", "wait"]  # "b" and "c" queued behind "wait", not offered
    assert received == ["wait", "b", "c"]


async def test_a_replaying_socket_does_not_go_direct_while_it_has_messages_to_replay() -> None:
    results: list[bool] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = ReplayingWebSocket(max_msg_size=4096)
        await ws.prepare(request)
        ws.replay.append(WSMessage(WSMsgType.TEXT, "first", None))
        results.append(ws.direct(lambda text: True))
        ws.replay.clear()
        results.append(ws.direct(lambda text: True))
        results.append(ws.direct(None))
        await ws.close()
        return ws

    await _serve(handler, [])
    assert results == [False, True, True]


class _Server:
    """A media socket on the server side of a real socket, its session's part played here."""

    def __init__(self, ws_class: type[web.WebSocketResponse], fail_on: int = -1) -> None:
        self.ws_class = ws_class
        self.fail_on = fail_on  # the frame whose handling raises
        self.direct = False
        self.media: list[tuple[str, bytes]] = []  # (how it came, the frame)
        self.messages: list[object] = []
        self.errors: list[str] = []
        self.raised: list[str] = []
        self.contexts: set[str] = set()  # the call's context variable, seen by the frame path

    def _on_media(self, ulaw: bytes) -> None:
        if ulaw == _frame(self.fail_on):
            raise RuntimeError("a bug in the frame path")
        self.media.append(("direct", ulaw))
        self.contexts.add(_CALL.get())

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = self.ws_class(max_msg_size=4096)
        await ws.prepare(request)
        socket = MediaSocket(ws, lead_ms=200,
                             on_error=lambda exc: self.errors.append(exc.code))
        assert await socket.await_start() is not None
        _CALL.set("this call")  # as the session's error sink (agent.call.errors)
        self.direct = socket.media_direct(self._on_media)
        try:
            while (message := await socket.receive()) is not None:
                if type(message) is bytes:
                    self.media.append(("received", message))
                else:
                    self.messages.append(message)
                if isinstance(message, tw.Stop):
                    break
        except RuntimeError as exc:
            self.raised.append(str(exc))
        socket.media_direct(None)
        await socket.close()
        return ws


def _call(*middle: str) -> list[str]:
    return [tw.encode_connected(), tw.encode_start(SID, ACCOUNT, CALL), *middle,
            tw.encode_stop(SID, 99, ACCOUNT, CALL)]


@pytest.mark.parametrize("ws_class", [DirectWebSocket, web.WebSocketResponse])
async def test_media_frames_reach_the_session_in_order_either_way(
    ws_class: type[web.WebSocketResponse],
) -> None:
    server = _Server(ws_class)
    await _serve(server.handler, _call(*(_media(n) for n in range(20)),
                                       tw.encode_mark_echo(SID, 21, "m1"), _media(20)),
                 pause_s=0.005)
    assert server.direct is (ws_class is DirectWebSocket)
    how = "direct" if server.direct else "received"
    assert server.media == [(how, _frame(n)) for n in range(21)]
    assert [type(m) for m in server.messages] == [tw.MarkEcho, tw.Stop]
    assert server.errors == []
    assert server.contexts == ({"this call"} if server.direct else set())


async def test_refused_or_unusual_media_is_left_to_receive_which_reports_it() -> None:
    server = _Server(DirectWebSocket)
    spaced = tw.encode_inbound_media(SID, 9, 9, 200, _frame(9)).replace('","', '", "', 1)
    await _serve(server.handler, _call(_media(0, 100), _media(1, 60),  # backwards
                                       spaced, _media(2, 220)), pause_s=0.005)
    assert server.media == [("direct", _frame(0)), ("received", _frame(9)),
                            ("direct", _frame(2))]
    assert server.errors == ["timestamp_backwards"]  # reported once, by receive


async def test_what_the_frame_path_raises_is_raised_by_receive() -> None:
    server = _Server(DirectWebSocket, fail_on=3)
    await _serve(server.handler, _call(*(_media(n) for n in range(6))), pause_s=0.005)
    assert server.media == [("direct", _frame(n)) for n in range(3)]
    assert server.raised == ["a bug in the frame path"]


def test_accept_media_leaves_a_refused_frame_to_receive_and_the_state_as_it_was() -> None:
    stream = tw.InboundStream()
    stream.receive(tw.encode_start(SID, ACCOUNT, CALL), 0)
    assert stream.accept_media(_media(1, 100), 100) == _frame(1)
    assert stream.accept_media(_media(2, 80), 120) is None  # backwards
    assert stream.last_timestamp_ms == 100
    with pytest.raises(ProtocolError):
        stream.receive_audio(_media(2, 80), 120)
    assert stream.accept_media(tw.encode_mark_echo(SID, 5, "m"), 140) is None
    assert stream.accept_media(_media(3, 120), 140) == _frame(3)
    stream.receive(tw.encode_stop(SID, 99, ACCOUNT, CALL), 160)
    assert stream.accept_media(_media(4, 140), 160) is None  # after stop: receive says so
