"""One phone call: the Twilio media socket in, the agent's voice out.

Per call there is one ``asyncio.TaskGroup`` holding:
- the receive loop (the group's body): every inbound 20 ms frame is decoded, voice-detected,
  pushed to the recogniser and fed to the turn detector, inline and without awaiting anything
  but the socket — nothing per frame hops threads;
- the conversation task: takes ended turns, DTMF and interruptions in order, gets the final
  transcript and starts one reply at a time;
- the reply task: runs the responder's actions (speak, listen, hang up). Barge-in cancels it
  from the receive loop right after ``clear`` is sent.

When the stream stops or the socket closes, the receive loop returns and every task of the call
is cancelled and awaited before ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from agent.calllog import CallLog, CallRecord, Latency, Turn, now_iso
from agent.frames import FramePipeline
from agent.metrics import Metrics
from agent.playback import Playback, ReplyPlayback
from agent.responder import (
    CallerSaid,
    CallEvent,
    CallStarted,
    DtmfPressed,
    Hangup,
    Listen,
    ReplyInterrupted,
    Responder,
    Say,
)
from agent.store import Store, StoredCall
from agent.turns import BargeIn, SpeechDropped, TurnConfig, TurnDetector, TurnEnded
from audio.pacing import OutboundPacer
from audio.vad import Vad
from providers.base import AsyncResource, SpeechToText, SttStream, TextToSpeech
from providers.errors import ProtocolError, ProviderError
from providers.telephony import twilio_media as tw

log = logging.getLogger(__name__)

# Twilio sends `connected` and `start` right after the upgrade; a socket that has not started a
# stream by then is not a Twilio media stream.
_START_TIMEOUT_S = 10.0
# Outbound media messages carry at most this much audio (100 ms): big enough to keep the message
# rate low, small enough that pacing and `clear` stay fine-grained.
_MAX_MEDIA_BYTES = 800
# After the goodbye, wait for its mark (it has played) but never longer than the queued audio
# plus this margin.
_HANGUP_MARGIN_S = 2.0
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    turn: TurnConfig
    outbound_lead_ms: int
    flow_name: str


@dataclass(frozen=True, slots=True)
class SessionDeps:
    stt: SpeechToText
    tts: TextToSpeech
    make_vad: Callable[[], Vad]
    make_responder: Callable[[tw.Start], Responder]
    call_log: CallLog
    metrics: Metrics
    # started with the server (e.g. recogniser worker processes), closed at shutdown
    resources: tuple[AsyncResource, ...] = ()
    store: Store | None = None  # where finished calls are kept (None: memory only)
    # speaks instead of ``tts`` for the rest of a call once ``tts`` has failed in it
    fallback_tts: TextToSpeech | None = None


@dataclass(frozen=True, slots=True)
class _TurnDone:
    last_voiced_at: float
    decided_at: float


_Inbox = _TurnDone | DtmfPressed


class _SocketClosed(Exception):
    """The media socket went away while we were sending."""


class CallSession:
    def __init__(self, ws: web.WebSocketResponse, config: SessionConfig, deps: SessionDeps):
        self._ws = ws
        self._cfg = config
        self._deps = deps
        self._loop = asyncio.get_running_loop()
        self._stream = tw.InboundStream()
        self._playback = Playback()
        self._pacer = OutboundPacer(lead_ms=config.outbound_lead_ms)
        self._turns = TurnDetector(config.turn)
        self._inbox: asyncio.Queue[_Inbox] = asyncio.Queue()
        self._reply_task: asyncio.Task[None] | None = None
        self._current: ReplyPlayback | None = None
        self._interrupted: ReplyPlayback | None = None
        self._last_voiced_at = 0.0
        self._closed = False
        self._hung_up = False
        self._hanging_up = False  # the goodbye is playing: barge-in no longer applies
        self._failed = False  # ended by an error rather than by the conversation
        self._tts_failed = False
        self._stt: SttStream | None = None
        self._responder: Responder | None = None
        self._turn_of: dict[int, Turn] = {}  # reply id -> its agent turn in the call log
        self._drained = asyncio.Event()  # set whenever no mark is pending (all audio played)
        self._stream_sid = ""
        self._record: CallRecord | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        start = await self._await_start()
        if start is None:
            return
        self._stream_sid = start.stream_sid
        record = CallRecord(call_sid=start.call_sid, stream_sid=start.stream_sid,
                            flow=self._cfg.flow_name)
        self._record = record
        self._deps.call_log.add(record)
        self._deps.metrics.active_calls += 1
        log.info("call started call_sid=%s stream_sid=%s", start.call_sid, start.stream_sid)
        try:
            self._stt = self._deps.stt.open_stream(call_sid=start.call_sid)
            self._frames = FramePipeline(self._deps.make_vad(), self._stt, self._turns)
            self._responder = self._deps.make_responder(start)
            record.flow = self._responder.flow  # the <Parameter> may have chosen another
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                converse = tg.create_task(self._converse(start), name=f"converse-{start.call_sid}")
                stopped = await self._receive()
                converse.cancel()
                if self._reply_task is not None:
                    self._reply_task.cancel()
            if not stopped and not self._hung_up:
                record.add_error("twilio", "media stream closed without a stop message")
            if record.status == "in-progress":  # never overwrite a final status
                record.status = "failed" if self._failed else "completed"
        finally:
            self._deps.metrics.active_calls -= 1
            record.ended_at = now_iso()
            if record.status == "in-progress":
                record.status = "failed"
            await self._close_quietly()
            await self._persist(record)
            log.info("call ended call_sid=%s status=%s", start.call_sid, record.status)

    async def _close_quietly(self) -> None:
        """Close the call's recogniser stream and responder; one failing does not skip the
        other, and a booking finished by ``aclose`` still reaches the call log."""
        if self._stt is not None:
            try:
                await self._stt.aclose()
            except Exception:
                log.exception("closing the recogniser failed call_sid=%s", self._sid)
        if self._responder is not None:
            try:
                await self._responder.aclose()
            except Exception:
                log.exception("closing the responder failed call_sid=%s", self._sid)
            self._snapshot()

    def _snapshot(self) -> None:
        """Mirror the responder's node, variables and booking into the call log."""
        record, responder = self._record, self._responder
        if record is None or responder is None:
            return
        record.node = responder.node
        record.variables = dict(responder.variables)
        booking_id = record.variables.get("booking_id", "")
        if booking_id and booking_id not in record.bookings:
            record.bookings.append(booking_id)

    async def _persist(self, record: CallRecord) -> None:
        store = self._deps.store
        if store is None:
            return
        try:
            await store.calls.save(StoredCall.from_record(record))
        except Exception:  # the database being down must not take the call log with it
            log.exception("could not store call call_sid=%s", record.call_sid)

    async def _await_start(self) -> tw.Start | None:
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                while True:
                    message = await self._next_message()
                    if message is None:
                        return None
                    if isinstance(message, tw.Start):
                        return message
        except TimeoutError:
            log.warning("no start message within %.0f s; closing", _START_TIMEOUT_S)
            await self._ws.close()
            return None

    async def _next_message(self) -> tw.InboundMessage | None:
        """The next valid Twilio message; None when the socket is done. Bad ones are logged."""
        while True:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.TEXT:
                data: str | bytes = msg.data
            elif msg.type is WSMsgType.BINARY:
                data = msg.data
                self._protocol_error(ProtocolError("binary_frame", "Twilio sends text frames"))
                continue
            else:
                if msg.type is WSMsgType.ERROR:  # aiohttp has closed the socket already
                    too_big = getattr(msg.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG
                    code = "message_too_big" if too_big else "socket_error"
                    self._protocol_error(ProtocolError(code, str(msg.data)))
                self._closed = True
                return None
            try:
                return self._stream.receive(data)
            except ProtocolError as exc:
                self._protocol_error(exc)

    def _protocol_error(self, exc: ProtocolError) -> None:
        self._deps.metrics.protocol_errors.inc(exc.code)
        log.warning("dropped bad message call_sid=%s: %s", self._sid, exc)
        if self._record is not None:
            self._record.add_error("twilio", str(exc))

    @property
    def _sid(self) -> str:
        return self._record.call_sid if self._record is not None else "-"

    # ---- inbound: the per-frame path ------------------------------------------------------------

    async def _receive(self) -> bool:
        """Run until stop (True) or the socket closes (False)."""
        while True:
            message = await self._next_message()
            if message is None:
                self._drained.set()
                return False
            if isinstance(message, tw.Media):
                self._on_media(message)
            elif isinstance(message, tw.MarkEcho):
                self._playback.mark_echoed(message.name)
                self._turns.agent_speaking = self._agent_speaking()
                if not self._playback.playing:
                    self._drained.set()
            elif isinstance(message, tw.Dtmf):
                assert self._record is not None
                self._record.dtmf.append(message.digit)
                self._inbox.put_nowait(DtmfPressed(message.digit))
            elif isinstance(message, tw.Stop):
                return True

    def _on_media(self, media: tw.Media) -> None:
        voiced, event = self._frames.process(media.payload, media.timestamp_ms)
        now = self._loop.time()
        if voiced:
            self._last_voiced_at = now
        if event is None:
            return
        if isinstance(event, TurnEnded):
            self._inbox.put_nowait(_TurnDone(self._last_voiced_at, now))
        elif isinstance(event, BargeIn):
            self._barge_in(event)
        elif isinstance(event, SpeechDropped):
            # A backchannel ("uh-huh") while the agent talks: not a turn. Close the
            # recogniser's utterance now so it does not prefix the caller's next turn.
            self._tg.create_task(self._discard_utterance(), name=f"discard-{self._sid}")

    async def _discard_utterance(self) -> None:
        try:
            assert self._stt is not None
            dropped = await self._stt.finalize()
        except ProviderError as exc:
            self._provider_error(exc)
            return
        log.info("backchannel ignored call_sid=%s words=%d", self._sid, len(dropped.text.split()))

    def _agent_speaking(self) -> bool:
        return self._playback.playing or self._current is not None

    def _barge_in(self, event: BargeIn) -> None:
        if self._hanging_up or not self._agent_speaking():
            return
        self._send_nowait(tw.encode_clear(self._stream_sid))
        cut = self._playback.cleared()
        if self._current is not None and self._current not in cut:
            cut.append(self._current)  # still being sent: its marks are not out yet
        for reply in cut:
            reply.cleared = True
            turn = self._turn_of.get(reply.reply_id)
            if turn is not None:
                turn.interrupted = True
                turn.heard_text = reply.heard_text
        if cut:
            self._interrupted = cut[-1]
        self._drained.set()
        self._pacer.reset()
        # Frames arrive in real time, so stream time from the first voiced frame to the frame
        # that triggered this is the caller's wait until `clear` leaves.
        speech_s = (event.at_ms - event.first_voiced_ms) / 1000
        self._deps.metrics.bargein.observe(speech_s)
        if self._reply_task is not None:
            self._reply_task.cancel()
        self._turns.agent_speaking = False
        log.info("barge-in call_sid=%s after %.0f ms of speech", self._sid, speech_s * 1000)

    # ---- the conversation ----------------------------------------------------------------------

    async def _converse(self, start: tw.Start) -> None:
        await self._reply(CallStarted(start.call_sid, dict(start.custom_parameters)), None)
        while True:
            item = await self._inbox.get()
            if isinstance(item, DtmfPressed):
                await self._reply(item, None)
                continue
            decided_at = item.decided_at
            assert self._stt is not None
            try:
                transcript = await self._stt.finalize()
                text = transcript.text
            except ProviderError as exc:
                self._provider_error(exc)
                text = ""
            except Exception:  # e.g. the recogniser cannot respawn: the turn is heard as silence
                log.exception("recogniser failed call_sid=%s", self._sid)
                self._provider_error(ProviderError("stt", "recogniser failed"))
                text = ""
            final_at = self._loop.time()
            assert self._record is not None
            self._record.turns.append(Turn(role="caller", text=text))
            log.info("caller turn call_sid=%s words=%d", self._sid, len(text.split()))
            log.debug("caller said call_sid=%s: %r", self._sid, text)
            latency = Latency(
                endpoint_ms=(decided_at - item.last_voiced_at) * 1000,
                stt_final_ms=(final_at - decided_at) * 1000,
            )
            interrupted, self._interrupted = self._interrupted, None
            if interrupted is not None:
                await self._reply(
                    ReplyInterrupted(interrupted.heard_text, interrupted.unheard_text), None
                )
            await self._reply(CallerSaid(text), (item.last_voiced_at, latency))

    async def _reply(self, event: CallEvent, timing: tuple[float, Latency] | None) -> None:
        """Run one reply as its own task, so barge-in can cancel it, and wait for it."""
        task = self._tg.create_task(self._speak_reply(event, timing), name=f"reply-{self._sid}")
        self._reply_task = task
        await asyncio.wait([task])
        self._reply_task = None
        self._current = None
        self._turns.agent_speaking = self._agent_speaking()

    async def _speak_reply(self, event: CallEvent, timing: tuple[float, Latency] | None) -> None:
        assert self._record is not None
        record = self._record
        asked_at = self._loop.time()
        first_action_at: float | None = None
        hangup = False
        try:
            assert self._responder is not None and self._stt is not None
            async for action in self._responder.handle(event):
                if first_action_at is None:
                    first_action_at = self._loop.time()
                if isinstance(action, Say):
                    latency = None
                    if timing is not None:
                        latency = timing[1]
                        latency.llm_ttft_ms = (first_action_at - asked_at) * 1000
                    await self._say(action.text, timing[0] if timing else None, latency)
                    timing = None  # only the first utterance of a reply answers the turn
                elif isinstance(action, Listen):
                    self._stt.set_hints(action.hints)
                elif isinstance(action, Hangup):
                    hangup = True
                    record.status = "completed"
            if hangup:
                self._hanging_up = True
                await self._hang_up()
        except _SocketClosed:
            return
        except ProviderError as exc:
            self._provider_error(exc)
            self._failed = self._hanging_up = True
            await self._hang_up()
        except Exception:  # a bug in a responder must end one call politely, not the server
            log.exception("reply failed call_sid=%s", self._sid)
            record.add_error("agent", "internal error while replying")
            self._failed = self._hanging_up = True
            await self._hang_up()
        finally:  # also when barge-in or the end of the call cancels the reply
            self._snapshot()

    async def _say(self, text: str, last_voiced_at: float | None, latency: Latency | None) -> None:
        assert self._record is not None
        reply = self._playback.new_reply()
        self._current = reply
        self._turns.agent_speaking = True
        turn = Turn(role="agent", text=text, latency=latency)
        self._record.turns.append(turn)
        self._turn_of[reply.reply_id] = turn
        try:
            for sentence in _SENTENCE_END.split(text.strip()):
                if not sentence:
                    continue
                synth_at = self._loop.time()
                first = True
                async for audio in self._synthesize(sentence):
                    if first and latency is not None and last_voiced_at is not None:
                        sent_at = self._loop.time()
                        latency.tts_ttfb_ms = (sent_at - synth_at) * 1000
                        self._finish_latency(latency, sent_at - last_voiced_at)
                        latency = None
                    first = False
                    await self._send_audio(audio)
                await self._send(tw.encode_mark(self._stream_sid,
                                                self._playback.chunk_sent(reply, sentence)))
        finally:
            self._current = None  # sent; its marks say when it has been heard
            turn.interrupted = reply.cleared
            if reply.cleared:
                turn.heard_text = reply.heard_text

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        """The call's TTS; if it fails, the fallback TTS from then on (the sentence that failed
        is spoken again in full: a repeat is better than silence)."""
        fallback = self._deps.fallback_tts
        if not self._tts_failed or fallback is None:
            try:
                async for audio in self._deps.tts.synthesize(text):
                    yield audio
                return
            except (ProviderError, ProtocolError) as exc:
                if fallback is None:
                    raise
                error = exc if isinstance(exc, ProviderError) else ProviderError("tts", str(exc))
                self._provider_error(error)
                self._tts_failed = True
                log.warning("tts failed call_sid=%s; speaking with the fallback", self._sid)
        async for audio in fallback.synthesize(text):
            yield audio

    def _finish_latency(self, latency: Latency, turn_latency_s: float) -> None:
        latency.turn_latency_ms = turn_latency_s * 1000
        waited = (latency.endpoint_ms + latency.stt_final_ms + latency.llm_ttft_ms
                  + latency.tts_ttfb_ms)
        latency.server_overhead_ms = max(0.0, latency.turn_latency_ms - waited)
        self._deps.metrics.turn_latency.observe(turn_latency_s)

    async def _send_audio(self, audio: bytes) -> None:
        for offset in range(0, len(audio), _MAX_MEDIA_BYTES):
            piece = audio[offset : offset + _MAX_MEDIA_BYTES]
            delay = self._pacer.delay_s(self._loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send(tw.encode_media(self._stream_sid, piece))
            self._pacer.sent(self._loop.time(), len(piece))

    async def _hang_up(self) -> None:
        """Let the last words play (their mark comes back), then close the media socket."""
        timeout_s = self._pacer.queued_ms(self._loop.time()) / 1000 + _HANGUP_MARGIN_S
        if self._playback.playing and not self._closed:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._drained.wait()
        self._closed = True
        self._hung_up = True
        await self._ws.close()

    # ---- sending -------------------------------------------------------------------------------

    async def _send(self, text: str) -> None:
        if self._closed or self._ws.closed:
            raise _SocketClosed
        try:
            await self._ws.send_str(text)
        except ConnectionError as exc:
            self._closed = True
            raise _SocketClosed from exc

    def _send_nowait(self, text: str) -> None:
        """Send from the per-frame path without awaiting (barge-in's `clear`)."""
        if self._closed or self._ws.closed:
            return
        task = self._tg.create_task(self._send_quietly(text), name=f"send-{self._sid}")
        del task  # owned by the task group

    async def _send_quietly(self, text: str) -> None:
        with contextlib.suppress(_SocketClosed):
            await self._send(text)

    def _provider_error(self, exc: ProviderError) -> None:
        self._deps.metrics.provider_errors.inc(exc.provider)
        log.warning("provider error call_sid=%s: %s", self._sid, exc)
        if self._record is not None:
            self._record.add_error(exc.provider, exc.message)


