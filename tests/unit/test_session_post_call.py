"""After ``stop`` the media socket is let go at once: the post-call work (summary, writes,
webhook job: ``SessionDeps.on_ended``) runs after the close, so a caller's close handshake
never waits on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
from aiohttp import web

from slotline.agent.call.calllog import CallRecord
from slotline.agent.call.responder import Action, CallEvent, Say
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.app import build_app
from slotline.providers.stt.local import LocalSpeechToText
from slotline.providers.telephony import twilio_media as tw
from tests.unit.session_rig import Scripted, deps_for

SID, CALL, ACCOUNT = "MZ" + "a" * 32, "CA" + "b" * 32, "AC" + "c" * 32


async def test_the_socket_closes_before_the_post_call_work_is_done() -> None:
    post_call_started = asyncio.Event()
    post_call_may_end = asyncio.Event()
    ended: list[str] = []
    post_call_done = asyncio.Event()

    async def on_ended(start: tw.Start, record: CallRecord) -> None:
        post_call_started.set()
        await post_call_may_end.wait()  # a slow summary
        ended.append(record.call_sid)
        post_call_done.set()

    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        yield Say("Hello.")

    async with LocalSpeechToText() as recognizer:
        deps = replace(deps_for(recognizer, Scripted(handler)), on_ended=on_ended)
        runner = web.AppRunner(build_app(load_settings(None, {}), load_secrets({}), deps),
                               handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            async with aiohttp.ClientSession() as http, \
                    http.ws_connect(f"ws://{host}:{port}/twilio/media") as ws:
                await ws.send_str(tw.encode_connected())
                await ws.send_str(tw.encode_start(SID, ACCOUNT, CALL))
                for n in range(10):
                    await ws.send_str(tw.encode_inbound_media(SID, n + 2, n + 1, 20 * n,
                                                              b"\xff" * 160))
                await ws.send_str(tw.encode_stop(SID, 12, ACCOUNT, CALL))
                async with asyncio.timeout(5):
                    while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                        pass  # the greeting's audio and marks, then the server's close
                assert ws.closed
                async with asyncio.timeout(5):
                    await post_call_started.wait()
                assert ended == []
            post_call_may_end.set()
            async with asyncio.timeout(5):
                await post_call_done.wait()
        finally:
            post_call_may_end.set()
            await runner.cleanup()
    assert ended == [CALL]
