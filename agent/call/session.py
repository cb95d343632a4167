"""One phone call: the Twilio media socket in, the agent's voice out.

``CallSession(ws, config, deps).run()`` waits for the stream's ``start``, opens the call's
recogniser stream and responder, and only then builds the ``LiveCall``: every part of it is set
from the start. Per call there is one ``asyncio.TaskGroup`` holding:
- the receive loop (the group's body): every inbound 20 ms frame is decoded, voice-detected,
  pushed to the recogniser and fed to the turn detector, inline and without awaiting anything
  but the socket — nothing per frame hops threads;
- the conversation task and one reply at a time (``agent.call.replies``);
- background tasks: the recogniser's end-of-utterance watcher (``agent.call.frames``), the
  prompt-cache warm-up (``agent.call.prompt_cache``) and the hang-up.

Who has the floor is decided in one place, ``agent.call.floor``: the live call feeds it the turn
detector's events and the speaker's audio changes, and carries out what it answers — a barge-in
sends ``clear`` at once and holds the reply; the caller's words then decide whether the reply is
cancelled or resumes (``agent.call.replies``). The turn detector's ``agent_speaking`` follows the
floor.

Hanging up waits until the goodbye has been heard (its mark came back), then ends the call
through the telephony REST API when it is configured (``SessionDeps.end_call``: Twilio's
``Status=completed``). Twilio then stops the stream; closing the socket ourselves is the
fallback (no REST credentials, a failed request, no ``stop`` within ``_STOP_WAIT_S``) — with
``<Connect><Stream>`` that also ends a call whose TwiML has nothing after the ``<Connect>``.

When the stream stops or the socket closes, the receive loop returns and every task of the call
is cancelled and awaited before ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from slotline.agent import logs, tracing
from slotline.agent.call import floor as fl
from slotline.agent.call.calllog import CallLog, CallRecord, now_iso
from slotline.agent.call.early_start import Anticipating, EarlyStart
from slotline.agent.call.errors import errors_of_this_call
from slotline.agent.call.frames import FramePipeline, TurnEndModel
from slotline.agent.call.inbox import CallInbox, TurnDone
from slotline.agent.call.media_socket import MediaSocket
from slotline.agent.call.persist import CallPersister
from slotline.agent.call.prompt_cache import FILLERS, CallVoice, PromptCache, prompts_of
from slotline.agent.call.replies import Replies
from slotline.agent.call.responder import (
    DtmfPressed,
    ReportsBookings,
    ReportsModelUse,
    ReportsPath,
    Responder,
)
from slotline.agent.call.speaker import Speaker
from slotline.agent.call.turns import (
    BargeIn,
    SpeechDropped,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
)
from slotline.agent.call.turns import TurnEnded as DetectorTurnEnded
from slotline.agent.server.metrics import Metrics
from slotline.agent.store import Store
from slotline.agent.weak import weak_method
from slotline.audio.vad import Vad
from slotline.providers.base import (
    AsyncResource,
    Heard,
    SpeechToText,
    SttStream,
    TextToSpeech,
    with_events,
)
from slotline.providers.errors import ProtocolError, ProviderError
from slotline.providers.telephony import twilio_media as tw

if TYPE_CHECKING:
    from slotline.agent.dialer.engine import Dialer
    from slotline.agent.server.recording_store import Recordings

log = logging.getLogger(__name__)

# After the goodbye, wait for its mark (it has played) but never longer than the queued audio
# plus this margin.
_HANGUP_MARGIN_S = 2.0
# The REST hang-up (retries included) and, once accepted, Twilio's `stop` on the stream.
_END_CALL_TIMEOUT_S = 5.0
_STOP_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class SessionConfig:
    turn: TurnConfig
    outbound_lead_ms: int
    flow_name: str
    early_llm_ms: int = 0  # agent.call.early_start; 0: never
    # Silence after the caller's turn ended before a filler is said: past ~0.7 s a phone pause
    # starts to sound like a dropped line.
    filler_after_ms: int = 700
    fillers: tuple[str, ...] = FILLERS  # said in turn; each must be one sentence


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
    store: Store | None = None  # where calls are kept, as they go (None: memory only)
    # speaks instead of ``tts`` for the rest of a call once ``tts`` has failed in it
    fallback_tts: TextToSpeech | None = None
    # audio of the flows' fixed sentences and of the fillers, for every call of the server
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    # ends a live call by its sid through the telephony REST API (None: close the socket)
    end_call: Callable[[str], Awaitable[None]] | None = None
    # told when a call's session is over (the dialer settles outbound attempts with it)
    on_ended: Callable[[tw.Start, CallRecord], Awaitable[None]] | None = None
    # the outbound dialer of this process (None: the server only answers)
    dialer: Dialer | None = None
    recordings: Recordings | None = None  # call recordings, when enabled
    # each call's audio end-of-turn model (agent.server.wiring.turn_model_factory; None: none)
    make_turn_model: Callable[[], TurnEndModel] | None = None


class CallSession:
    """The entry point for one media socket (``agent.server.app``)."""

    def __init__(self, ws: web.WebSocketResponse, config: SessionConfig, deps: SessionDeps):
        self._cfg = config
        self._deps = deps
        self._socket = MediaSocket(ws, lead_ms=config.outbound_lead_ms,
                                   on_error=weak_method(self._protocol_error))
        self._record: CallRecord | None = None  # once the stream has started
        self._failed = False  # cut off for bad messages

    async def run(self) -> None:
        start = await self._socket.await_start()
        if start is None:
            return
        params = start.custom_parameters
        record = CallRecord(call_sid=start.call_sid, stream_sid=start.stream_sid,
                            flow=self._cfg.flow_name,
                            direction="outbound" if params.get("direction") == "outbound"
                            else "inbound",
                            campaign_id=params.get("campaign", "")[:64],
                            contact_id=params.get("contact", "")[:64],
                            phone=params.get("user_phone", "")[:32])
        self._record = record
        with errors_of_this_call(self._provider_error):  # agent.call.errors
            await self._run(start, record)

    async def _run(self, start: tw.Start, record: CallRecord) -> None:
        deps, socket = self._deps, self._socket
        if deps.recordings is not None:  # opt-in: the socket feeds it both ways
            socket.tap = deps.recordings.begin()
        deps.call_log.add(record)
        persister = CallPersister.started(deps.store, record, self._provider_error)
        deps.metrics.call_started(record.direction)
        log.info("call started call_sid=%s stream_sid=%s", start.call_sid, start.stream_sid)
        call_span = tracing.call_started(record)  # the root span; current for the call's tasks
        live: LiveCall | None = None
        try:
            stt = deps.stt.open_stream(call_sid=start.call_sid)
            responder: Responder | None = None
            try:
                responder = deps.make_responder(start)
                record.flow = responder.flow  # the <Parameter> may have chosen another
                async with asyncio.TaskGroup() as tg:
                    live = LiveCall(start, record, socket, self._cfg, deps, stt, responder,
                                    persister, self._provider_error, tg)
                    stopped = await live.run()
                if not stopped and not live.hung_up:
                    record.add_error("twilio", "media stream closed without a stop message")
                if self._failed:
                    live.fail()
                if record.status == "in-progress":  # never overwrite a final status
                    record.status = "completed"
            finally:
                await self._close_quietly(stt, responder, live)
        finally:
            if socket.tap is not None and deps.recordings is not None:
                deps.recordings.finish(start.call_sid, socket.tap)  # written later
            record.ended_at = now_iso()
            if record.status == "in-progress":
                record.status = "failed"
            # the stream is over: the socket is let go now, not after the post-call work below
            # (a caller's close would wait on it, a burst of hang-ups would hold their sockets);
            # the record's status is final by then
            await socket.close()
            deps.metrics.call_ended(record.direction, record.status)
            if persister is not None:
                await persister.finish()  # the final write, after any other
            log.info("call ended call_sid=%s status=%s", start.call_sid, record.status)
            tracing.call_ended(call_span, record)
            logs.call_ended(start.call_sid)  # the count of its warnings held back, now
            if deps.on_ended is not None:
                try:
                    await deps.on_ended(start, record)
                except Exception:  # the dialer's bookkeeping must not fail the call's end
                    log.exception("call-end hook failed call_sid=%s", start.call_sid)

    async def _close_quietly(
        self, stt: SttStream, responder: Responder | None, live: LiveCall | None
    ) -> None:
        """Close the call's recogniser stream and responder; one failing does not skip the
        other, and a booking finished by ``aclose`` still reaches the call log."""
        sid = self._record.call_sid if self._record is not None else "-"
        try:
            await stt.aclose()
        except Exception:
            log.exception("closing the recogniser failed call_sid=%s", sid)
        if responder is not None:
            try:
                await responder.aclose()
            except Exception:
                log.exception("closing the responder failed call_sid=%s", sid)
        if live is not None:
            live.snapshot()

    def _protocol_error(self, exc: ProtocolError) -> None:
        self._deps.metrics.protocol_errors.inc(exc.code)
        self._failed |= exc.code == "too_many_errors"  # cut off (agent.call.media_socket)
        sid = self._record.call_sid if self._record is not None else "-"
        log.warning("dropped bad message call_sid=%s: %s", sid, exc)
        if self._record is not None:
            self._record.add_error("twilio", str(exc))

    def _provider_error(self, exc: ProviderError) -> None:
        self._deps.metrics.provider_errors.inc(exc.provider)
        sid = self._record.call_sid if self._record is not None else "-"
        log.warning("provider error call_sid=%s: %s", sid, exc)
        if self._record is not None:
            self._record.add_error(exc.provider, exc.message)


class LiveCall:
    """A started call with its recogniser stream and responder: the pump between the socket,
    the floor (``agent.call.floor``) and the replies (``agent.call.replies``)."""

    def __init__(
        self,
        start: tw.Start,
        record: CallRecord,
        socket: MediaSocket,
        config: SessionConfig,
        deps: SessionDeps,
        stt: SttStream,
        responder: Responder,
        persister: CallPersister | None,
        provider_error: Callable[[ProviderError], None],
        tg: asyncio.TaskGroup,
    ) -> None:
        self.sid = start.call_sid
        self.start = start
        self.record = record
        self.cfg = config
        self.deps = deps
        self.stt = stt
        self.responder = responder
        self.provider_error = provider_error
        self.tg = tg  # the call's tasks
        self._socket = socket
        self._persister = persister
        self._loop = asyncio.get_running_loop()
        self.floor = fl.Floor()
        self.turns = TurnDetector(config.turn, words_pending=stt.words_pending)
        model = deps.make_turn_model() if deps.make_turn_model is not None else None
        self.frames = FramePipeline(deps.make_vad(), stt, self.turns, model)
        self.voice = CallVoice(deps.prompt_cache, deps.tts, deps.fallback_tts,
                               weak_method(self._tts_failed),
                               on_ahead=deps.metrics.tts_ahead.inc)
        self.speaker = Speaker(socket, self.voice, record, deps.metrics,
                               on_speaking=weak_method(self._agent_speaking))
        self.inbox = CallInbox()  # bounded: agent.call.inbox
        self.prompts = prompts_of(responder)  # the responder's fixed sentences
        deps.prompt_cache.register((*config.fillers, *self.prompts))
        self.replies = Replies(self)
        self.background: set[asyncio.Task[Any]] = set()  # running; each leaves when done
        self.hung_up = False  # the hang-up closed the call (its goodbye was heard)
        self._early: EarlyStart | None = None  # model requests on a pause's words
        self._stream_over = asyncio.Event()  # `stop` came, or the socket closed
        self._bargein_voiced_at = 0.0  # the first voiced frame of the barge-in being cleared

    async def run(self) -> bool:
        """Until stop (True) or the socket closes (False); the call's tasks are cancelled
        (the task group awaits them)."""
        tg = self.tg
        # the recogniser's words and ends of utterance, and the end-of-turn model's verdicts
        self.in_background(self.frames.watch(), "watch")
        self._start_early()
        converse = tg.create_task(self.replies.converse(), name=f"converse-{self.sid}")
        stopped = await self._receive()
        self._stream_over.set()
        self.tell(fl.StreamStopped())
        converse.cancel()
        self.replies.cancel()
        for task in self.background:
            task.cancel()
        return stopped

    def in_background(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        """Run ``coro`` in the call's task group until it ends or the stream does. A finished
        task is let go at once: a cancelled one holds its traceback, the traceback its frame and
        the frame this call, so kept here it would make a reference cycle (``agent.weak``)."""
        task = self.tg.create_task(coro, name=f"{name}-{self.sid}")
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def fail(self) -> None:
        """The call ends by an error rather than by the conversation."""
        if self.record.status == "in-progress":
            self.record.status = "failed"

    def _start_early(self) -> None:
        """Let the responder start its model request on the settled words of a pause
        (``agent.call.early_start``) when it has a model."""
        responder, stt = self.responder, self.stt
        if (self.cfg.early_llm_ms <= 0 or not isinstance(responder, Anticipating)
                or not responder.can_anticipate):
            return
        early = EarlyStart(self.cfg.early_llm_ms, responder.anticipate,
                           responder.forget_anticipation)
        self._early = early

        async def follow() -> None:
            async for event in with_events(stt).events():
                if isinstance(event, Heard):
                    early.heard(event.text, event.final)

        self.in_background(follow(), "early")

    def snapshot(self) -> None:
        """Mirror the responder's node, path, variables, bookings and model use into the call log.
        A responder that reports its bookings lists every one it made (a collective booking's
        on each calendar); another's are read from its ``booking_id`` variable."""
        record, responder = self.record, self.responder
        record.node = responder.node
        record.variables = dict(responder.variables)
        if isinstance(responder, ReportsBookings):
            made = tuple(responder.bookings_made())
        else:
            made = (record.variables.get("booking_id", ""),)
        record.add_bookings(made)
        if isinstance(responder, ReportsModelUse):
            record.llm = dict(responder.model_use())
        if isinstance(responder, ReportsPath):
            record.set_path(responder.path)
        if self._persister is not None:
            self._persister.changed()

    # ---- the floor: events in, commands carried out --------------------------------------------

    def tell(self, event: fl.FloorEvent) -> tuple[fl.FloorCommand, ...]:
        """Feed the floor; carry out the commands that need no waiting (``Clear``, ``Hold``,
        ``Unhold``, ``HangUp``) and return them all (the replies carry out the rest)."""
        commands = self.floor.handle(event)
        for command in commands:
            if isinstance(command, fl.Clear):
                self._clear()
            elif isinstance(command, fl.Hold):
                self.replies.hold()
            elif isinstance(command, fl.Unhold):
                self.speaker.unhold()
            elif isinstance(command, fl.HangUp):
                self.in_background(self._hang_up(), "hangup")
        self.turns.agent_speaking = self.floor.agent_speaking
        return commands

    def _agent_speaking(self, speaking: bool) -> None:
        self.tell(fl.AudioStarted() if speaking else fl.AudioStopped())

    def _clear(self) -> None:
        """Clear what Twilio has buffered; the speaker cuts and holds everything not heard."""
        if not self._socket.gone:
            clear = self._send_clear(self._socket.clear(), self._bargein_voiced_at)
            self.tg.create_task(clear, name=f"clear-{self.sid}")
        self.speaker.interrupt()
        log.info("barge-in call_sid=%s after %.0f ms of speech", self.sid,
                 (self._loop.time() - self._bargein_voiced_at) * 1000)

    async def _send_clear(self, clear: str, voiced_at: float) -> None:
        """The caller's wait, measured on our clock: their first voiced frame in, clear out."""
        await self._socket.send_quietly(clear)
        self.deps.metrics.bargein.observe(self._loop.time() - voiced_at)

    async def _hang_up(self) -> None:
        """Let the last words play (their mark comes back), then end the call (module doc)."""
        await self.speaker.wait_played(self._socket.queued_ms() / 1000 + _HANGUP_MARGIN_S)
        self.hung_up = True
        end_call = self.deps.end_call
        if end_call is not None and not self._socket.gone:
            try:
                async with asyncio.timeout(_END_CALL_TIMEOUT_S):
                    await end_call(self.sid)
            except ProviderError as exc:
                self.provider_error(exc)
            except TimeoutError:
                self.provider_error(ProviderError("twilio", "the hang-up request timed out"))
            else:
                log.info("call_sid=%s ended through the REST API", self.sid)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_STOP_WAIT_S):
                        await self._stream_over.wait()
        await self._socket.close()

    def _tts_failed(self, exc: ProviderError) -> None:
        self.provider_error(exc)
        log.warning("tts failed call_sid=%s; speaking with the fallback", self.sid)

    # ---- inbound: the per-frame path ------------------------------------------------------------

    async def _receive(self) -> bool:
        """Run until stop (True) or the socket closes (False)."""
        socket = self._socket
        socket.media_direct(self._on_media)  # media frames never wait for this loop
        try:
            return await self._receive_messages()
        finally:
            socket.media_direct(None)

    async def _receive_messages(self) -> bool:
        while True:
            message = await self._socket.receive()
            if message is None:
                self.speaker.stream_ended()
                return False
            if type(message) is bytes:  # media: its 20 ms of mu-law
                self._on_media(message)
            elif isinstance(message, tw.MarkEcho):
                self.speaker.mark_echoed(message.name)
            elif isinstance(message, tw.Dtmf):
                self.record.add_dtmf(message.digit)
                if not self.inbox.put(DtmfPressed(message.digit)):
                    self._socket.reject(ProtocolError("dtmf_overflow", "keypresses pile up"))
            elif isinstance(message, tw.Stop):
                return True

    def _on_media(self, ulaw: bytes) -> None:
        now = self._loop.time()  # the server's clock, never the client's timestamp
        voiced, event = self.frames.process(ulaw, int(now * 1000))
        early = self._early
        if early is not None and not self.turns.agent_speaking:
            early.frame(voiced)
        if event is None:
            return
        if isinstance(event, DetectorTurnEnded):
            if early is not None:
                early.turn_ended()
            self.deps.metrics.turn_ends.inc(event.reason)
            self.tell(fl.TurnEnded())
            # the caller's words ended at their last loud frame, not the VAD's hang-over
            last_ms = event.last_loud_ms if event.last_loud_ms >= 0 else event.last_voiced_ms
            if not self.inbox.put(TurnDone(last_ms / 1000, now, event.reason, event.patience)):
                log.warning("turn dropped call_sid=%s: the inbox is full", self.sid)
        elif isinstance(event, BargeIn):
            self._bargein_voiced_at = event.first_voiced_ms / 1000  # (server clock)
            self.tell(fl.BargedIn())
        elif isinstance(event, SpeechStarted):
            self.tell(fl.VoiceStarted())
        elif isinstance(event, SpeechDropped):
            self.tell(fl.VoiceDropped())
            # A backchannel ("uh-huh") while the agent talks: not a turn. Close the
            # recogniser's utterance now so it does not prefix the caller's next turn.
            self.tg.create_task(self._discard_utterance(), name=f"discard-{self.sid}")

    async def _discard_utterance(self) -> None:
        try:
            dropped = await self.stt.finalize()
        except ProviderError as exc:
            self.provider_error(exc)
            return
        log.info("backchannel ignored call_sid=%s words=%d", self.sid, len(dropped.text.split()))
