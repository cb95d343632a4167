"""One phone call: the Twilio media socket in, the agent's voice out.

Per call there is one ``asyncio.TaskGroup`` holding:
- the receive loop (the group's body): every inbound 20 ms frame is decoded, voice-detected,
  pushed to the recogniser and fed to the turn detector, inline and without awaiting anything
  but the socket — nothing per frame hops threads;
- the conversation task: takes ended turns, DTMF and interruptions in order, gets the final
  transcript and starts one reply at a time;
- the reply task: runs the responder's actions (speak, listen, hang up);
- background tasks: the recogniser's end-of-utterance watcher (``agent.call.frames``) and the
  prompt-cache warm-up (``agent.call.prompt_cache``).

Hanging up waits until the goodbye has been heard (its mark came back), then ends the call
through the telephony REST API when it is configured (``SessionDeps.end_call``: Twilio's
``Status=completed``). Twilio then stops the stream; closing the socket ourselves is the
fallback (no REST credentials, a failed request, no ``stop`` within ``_STOP_WAIT_S``) — with
``<Connect><Stream>`` that also ends a call whose TwiML has nothing after the ``<Connect>``.

Barge-in (the turn detector's ``BargeIn``) sends ``clear`` at once — ``bargein_ms`` stays
``bargein_min_speech_ms`` plus one frame — and *holds* the reply: it sends nothing more, but it
is not cancelled yet. The end of the caller's turn decides:
- words (or a keypress): a real interruption. The reply is cancelled with everything below it,
  and the responder hears ``ReplyInterrupted`` with only what was heard;
- no words (a cough, a door, line noise): a false interruption. The agent resumes: the
  sentences the ``clear`` cut are played again from the first unheard one (their audio is kept
  until heard), then the held reply goes on, its current sentence from its start.
The price of confirming by words rather than pausing and waiting for interim words before
``clear``: after a false interruption the caller hears a gap (their noise, the end-of-turn
silence, the final transcript) and the cut sentence again from its start. Waiting for words
first would keep the agent talking over every real interruption for the recogniser's interim
latency (and the offline recogniser has no interims at all).

Fillers: when the caller's turn has ended and the responder has not produced anything to say
within ``filler_after_ms`` (a slow availability lookup, a slow model), the session says a short
filler from the prompt cache while it keeps waiting — only before the reply's first sentence,
never twice in a row.

When the stream stops or the socket closes, the receive loop returns and every task of the call
is cancelled and awaited before ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from slotline.agent import logs, tracing
from slotline.agent.call.calllog import CallLog, CallRecord, Latency, Turn, now_iso
from slotline.agent.call.early_start import Anticipating, EarlyStart
from slotline.agent.call.errors import errors_of_this_call
from slotline.agent.call.frames import EndpointingStream, FramePipeline, watch_endpoints
from slotline.agent.call.inbox import CallInbox, TurnDone
from slotline.agent.call.media_socket import MediaSocket, SocketClosed
from slotline.agent.call.persist import CallPersister
from slotline.agent.call.playback import ReplyPlayback
from slotline.agent.call.prompt_cache import FILLERS, CallVoice, PromptCache, prompts_of
from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    DtmfPressed,
    Hangup,
    Listen,
    ReplyInterrupted,
    ReportsBookings,
    ReportsModelUse,
    ReportsPath,
    Responder,
    Say,
)
from slotline.agent.call.speaker import Speaker
from slotline.agent.call.turns import (
    BargeIn,
    SpeechDropped,
    TurnConfig,
    TurnDetector,
    TurnEnded,
)
from slotline.agent.server.metrics import Metrics
from slotline.agent.store import Store
from slotline.audio.loudness import LoudFrames
from slotline.audio.vad import Vad
from slotline.providers.base import AsyncResource, SpeechToText, SttStream, TextToSpeech
from slotline.providers.errors import ProtocolError, ProviderError
from slotline.providers.telephony import twilio_media as tw
from slotline.providers.tracing import Span

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


# an event to reply to, the caller turn's timing, when the caller started waiting (fillers),
# the turn's span (None: the reply starts its own)
_Queued = tuple[CallEvent, tuple[float, Latency] | None, float | None, Span | None]


class CallSession:
    def __init__(self, ws: web.WebSocketResponse, config: SessionConfig, deps: SessionDeps):
        self._cfg = config
        self._deps = deps
        self._loop = asyncio.get_running_loop()
        self._socket = MediaSocket(ws, lead_ms=config.outbound_lead_ms,
                                   on_error=self._protocol_error)
        self._turns = TurnDetector(config.turn)
        self._inbox = CallInbox()  # bounded: agent.call.inbox
        self._reply_task: asyncio.Task[None] | None = None
        self._interrupted: ReplyPlayback | None = None  # confirmed, not yet told the responder
        self._on_hold: asyncio.Future[None] | None = None  # wakes the wait for a reply
        self._hangup_owed = False  # a cancelled reply had been handed the Hangup
        self._fillers_said = 0
        self._background: list[asyncio.Task[Any]] = []
        self._queued: deque[_Queued] = deque()  # replies waiting their turn, oldest first
        self._last_voiced_at = 0.0  # when the caller's last loud frame came (audio.loudness)
        self._loudness = LoudFrames()
        self._hung_up = False
        self._stream_over = asyncio.Event()  # `stop` came, or the socket closed
        self._hanging_up = False  # the goodbye is playing: barge-in no longer applies
        self._failed = False  # ended by an error rather than by the conversation
        self._stt: SttStream | None = None
        self._responder: Responder | None = None
        self._record: CallRecord | None = None
        self._persister: CallPersister | None = None  # writes the record as the call goes
        self._voice = CallVoice(deps.prompt_cache, deps.tts, deps.fallback_tts, self._tts_failed)
        self._prompts: tuple[str, ...] = ()  # the responder's fixed sentences
        self._early: EarlyStart | None = None  # model requests on interim words

    # ---- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        with errors_of_this_call(self._provider_error):  # agent.call.errors
            await self._run()

    async def _run(self) -> None:
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
        self._speaker = Speaker(self._socket, self._voice, record, self._deps.metrics,
                                on_speaking=self._agent_speaking)
        if self._deps.recordings is not None:  # opt-in: the socket feeds it both ways
            self._socket.tap = self._deps.recordings.begin()
        self._deps.call_log.add(record)
        self._persister = CallPersister.started(self._deps.store, record, self._provider_error)
        self._deps.metrics.call_started(record.direction)
        log.info("call started call_sid=%s stream_sid=%s", start.call_sid, start.stream_sid)
        call_span = tracing.call_started(record)  # the root span; current for the call's tasks
        try:
            self._stt = self._deps.stt.open_stream(call_sid=start.call_sid)
            self._frames = FramePipeline(self._deps.make_vad(), self._stt, self._turns)
            self._responder = self._deps.make_responder(start)
            record.flow = self._responder.flow  # the <Parameter> may have chosen another
            self._prompts = prompts_of(self._responder)
            self._deps.prompt_cache.register((*self._cfg.fillers, *self._prompts))
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if isinstance(self._stt, EndpointingStream):
                    self._background.append(tg.create_task(
                        watch_endpoints(self._stt, self._turns.stt_final),
                        name=f"endpoints-{start.call_sid}",
                    ))
                self._start_early(start.call_sid)
                converse = tg.create_task(self._converse(start), name=f"converse-{start.call_sid}")
                stopped = await self._receive()
                self._stream_over.set()
                converse.cancel()
                if self._reply_task is not None:
                    self._reply_task.cancel()
                for task in self._background:
                    task.cancel()
            if not stopped and not self._hung_up:
                record.add_error("twilio", "media stream closed without a stop message")
            if record.status == "in-progress":  # never overwrite a final status
                record.status = "failed" if self._failed else "completed"
        finally:
            if self._socket.tap is not None and self._deps.recordings is not None:
                self._deps.recordings.finish(start.call_sid, self._socket.tap)  # written later
            record.ended_at = now_iso()
            if record.status == "in-progress":
                record.status = "failed"
            self._deps.metrics.call_ended(record.direction, record.status)
            await self._close_quietly()
            if self._persister is not None:
                await self._persister.finish()  # the final write, after any other
            log.info("call ended call_sid=%s status=%s", start.call_sid, record.status)
            tracing.call_ended(call_span, record)
            logs.call_ended(start.call_sid)  # the count of its warnings held back, now
            if self._deps.on_ended is not None:
                try:
                    await self._deps.on_ended(start, record)
                except Exception:  # the dialer's bookkeeping must not fail the call's end
                    log.exception("call-end hook failed call_sid=%s", start.call_sid)

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

    def _start_early(self, call_sid: str) -> None:
        """Let the responder start its model request on the interim words
        (``agent.call.early_start``) when it has a model and the recogniser has interim words."""
        responder, stt = self._responder, self._stt
        if (self._cfg.early_llm_ms <= 0 or not isinstance(responder, Anticipating)
                or not responder.can_anticipate or stt is None):
            return
        early = EarlyStart(self._cfg.early_llm_ms, responder.anticipate,
                           responder.forget_anticipation)
        self._early = early

        async def follow() -> None:
            async for transcript in stt.interim():
                early.heard(transcript.text)

        self._background.append(self._tg.create_task(follow(), name=f"interim-{call_sid}"))

    def _snapshot(self) -> None:
        """Mirror the responder's node, path, variables, bookings and model use into the call log.
        A responder that reports its bookings lists every one it made (a collective booking's
        on each calendar); another's are read from its ``booking_id`` variable."""
        record, responder = self._record, self._responder
        if record is None or responder is None:
            return
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

    def _protocol_error(self, exc: ProtocolError) -> None:
        self._deps.metrics.protocol_errors.inc(exc.code)
        self._failed |= exc.code == "too_many_errors"  # cut off (agent.call.media_socket)
        log.warning("dropped bad message call_sid=%s: %s", self._sid, exc)
        if self._record is not None:
            self._record.add_error("twilio", str(exc))

    def _agent_speaking(self, speaking: bool) -> None:
        self._turns.agent_speaking = speaking  # barge-in applies only while the agent talks

    @property
    def _sid(self) -> str:
        return self._record.call_sid if self._record is not None else "-"

    # ---- inbound: the per-frame path ------------------------------------------------------------

    async def _receive(self) -> bool:
        """Run until stop (True) or the socket closes (False)."""
        while True:
            message = await self._socket.receive()
            if message is None:
                self._speaker.stream_ended()
                return False
            if isinstance(message, tw.Media):
                self._on_media(message)
            elif isinstance(message, tw.MarkEcho):
                self._speaker.mark_echoed(message.name)
            elif isinstance(message, tw.Dtmf):
                assert self._record is not None
                self._record.add_dtmf(message.digit)
                if not self._inbox.put(DtmfPressed(message.digit)):
                    self._socket.reject(ProtocolError("dtmf_overflow", "keypresses pile up"))
            elif isinstance(message, tw.Stop):
                return True

    def _on_media(self, media: tw.Media) -> None:
        now = self._loop.time()  # the server's clock, never the client's timestamp
        voiced, event = self._frames.process(media.payload, int(now * 1000))
        if voiced and self._loudness.loud(media.payload):  # the words, not the VAD's hangover
            self._last_voiced_at = now
        early = self._early
        if early is not None and not self._turns.agent_speaking:
            early.frame(voiced)
        if event is None:
            return
        if isinstance(event, TurnEnded):
            self._loudness.reset()
            if early is not None:
                early.turn_ended()
            self._deps.metrics.turn_ends.inc(event.reason)
            if not self._inbox.put(TurnDone(self._last_voiced_at, now, event.reason,
                                            event.patience)):
                log.warning("turn dropped call_sid=%s: the inbox is full", self._sid)
        elif isinstance(event, BargeIn):
            self._barge_in(event)
        elif isinstance(event, SpeechDropped):
            self._loudness.reset()
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

    # ---- barge-in (the module docstring; the audio side is ``agent.call.speaker``) ---------------

    def _barge_in(self, event: BargeIn) -> None:
        """Clear what Twilio has buffered and hold the agent until the turn's words decide."""
        if self._hanging_up or not self._speaker.speaking:
            return
        voiced_at = event.first_voiced_ms / 1000  # when that frame arrived (server clock)
        if not self._socket.gone:
            clear = self._send_clear(self._socket.clear(), voiced_at)
            self._tg.create_task(clear, name=f"clear-{self._sid}")
        self._speaker.interrupt()
        if self._on_hold is not None and not self._on_hold.done():
            self._on_hold.set_result(None)
        log.info("barge-in call_sid=%s after %.0f ms of speech", self._sid,
                 (self._loop.time() - voiced_at) * 1000)

    async def _send_clear(self, clear: str, voiced_at: float) -> None:
        """The caller's wait, measured on our clock: their first voiced frame in, clear out."""
        await self._socket.send_quietly(clear)
        self._deps.metrics.bargein.observe(self._loop.time() - voiced_at)

    async def _confirm_interruption(self) -> None:
        """The held interruption was real: cancel the held reply; the responder will hear
        ``ReplyInterrupted`` with what was heard."""
        hold = self._speaker.take_hold()
        if hold is None:
            return
        task = self._reply_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        self._reply_task = None
        last = self._speaker.release(hold)
        if last is not None:
            self._interrupted = last

    async def _resume(self) -> None:
        """The held interruption had no words: play what it cut again, then let the held
        reply go on."""
        hold = self._speaker.take_hold()
        assert hold is not None
        self._deps.metrics.false_interruptions.inc()
        log.info("false interruption call_sid=%s: resuming %d sentence(s)", self._sid,
                 len(hold.cut))
        try:
            replayed = await self._speaker.resume(hold)
        except SocketClosed:
            return
        if not replayed:  # interrupted again: the inbox has that turn coming
            return
        if self._reply_task is not None:
            await self._await_reply(self._reply_task)

    # ---- the conversation ----------------------------------------------------------------------

    async def _converse(self, start: tw.Start) -> None:
        self._queued.append((CallStarted(start.call_sid, dict(start.custom_parameters)), None,
                             None, None))
        await self._run_queued()
        self._start_warm_up()
        while True:
            item = await self._inbox.get()
            if isinstance(item, DtmfPressed):
                await self._confirm_interruption()  # a keypress is never noise
                self._queued.append((item, None, self._loop.time(), None))
            else:
                await self._caller_turn(item)
            await self._run_queued()

    async def _caller_turn(self, item: TurnDone) -> None:
        """The caller's turn has ended: its transcript decides a held interruption, and
        (unless it was noise over the agent) the responder hears it."""
        decided_at = item.decided_at
        assert self._stt is not None
        turn = tracing.turn_started("CallerSaid", since_s=self._loop.time() - item.last_voiced_at)
        try:
            with tracing.current(turn):  # the recogniser's request belongs to the turn
                transcript = await self._stt.finalize()
            text = transcript.text
        except ProviderError as exc:
            self._provider_error(exc)
            text = ""
        except Exception:  # e.g. the recogniser cannot respawn: the turn is heard as silence
            log.exception("recogniser failed call_sid=%s", self._sid)
            self._provider_error(ProviderError("stt", "recogniser failed"))
            text = ""
        except asyncio.CancelledError:
            tracing.end_turn(turn, cancelled=True)
            raise
        final_at = self._loop.time()
        turn.set_attribute("slotline.turn.words", len(text.split()))
        turn.set_attribute("slotline.turn.ended_by", item.reason)
        if self._speaker.hold is not None:
            if not text.strip():
                tracing.end_turn(turn, noise=True)
                await self._resume()
                return
            await self._confirm_interruption()
        assert self._record is not None
        self._record.add_turn(Turn(role="caller", text=text, ended_by=item.reason,
                                   patience=item.patience))
        log.info("caller turn call_sid=%s words=%d ended_by=%s", self._sid,
                 len(text.split()), item.reason)
        log.debug("caller said call_sid=%s: %r", self._sid, text)
        latency = Latency(
            endpoint_ms=(decided_at - item.last_voiced_at) * 1000,
            stt_final_ms=(final_at - decided_at) * 1000,
        )
        interrupted, self._interrupted = self._interrupted, None
        if interrupted is not None:
            event = ReplyInterrupted(interrupted.heard_text, interrupted.unheard_text)
            self._queued.append((event, None, None, None))
        self._queued.append((CallerSaid(text), (item.last_voiced_at, latency), decided_at, turn))

    async def _run_queued(self) -> None:
        """Reply to the queued events in order; a barge-in holding a reply stops here (the
        rest wait until the interruption is decided)."""
        while self._queued and self._speaker.hold is None:
            event, timing, filler_at, span = self._queued.popleft()
            await self._reply(event, timing, filler_at=filler_at, span=span)

    async def _reply(
        self,
        event: CallEvent,
        timing: tuple[float, Latency] | None,
        *,
        filler_at: float | None = None,
        span: Span | None = None,
    ) -> None:
        """Run one reply as its own task, so barge-in can hold or cancel it, and wait for it
        (``filler_at``: when the caller started waiting, for the filler budget; ``span``: the
        caller turn's, else the reply gets its own)."""
        if filler_at is not None:
            filler_at += self._cfg.filler_after_ms / 1000
        if span is None:
            span = tracing.turn_started(type(event).__name__)
        with tracing.current(span):  # the task keeps it: the reply's requests are the turn's
            task = self._tg.create_task(self._speak_reply(event, timing, filler_at),
                                        name=f"reply-{self._sid}")
        tracing.end_turn_with(task, span, timing[1] if timing is not None else None)
        self._reply_task = task
        await self._await_reply(task)

    async def _await_reply(self, task: asyncio.Task[None]) -> None:
        """Until ``task`` is done, or a barge-in holds it (the turn's transcript, next in the
        inbox, decides whether it resumes or is cancelled)."""
        held = self._loop.create_future()
        self._on_hold = held
        try:
            await asyncio.wait([task, held], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._on_hold = None
            held.cancel()
        if task.done():
            self._reply_task = None
            self._speaker.reply_done()

    async def _speak_reply(
        self, event: CallEvent, timing: tuple[float, Latency] | None, filler_at: float | None
    ) -> None:
        assert self._record is not None
        record = self._record
        asked_at = self._loop.time()
        first_action_at: float | None = None
        hangup = False
        ahead: asyncio.Task[Action | None] | None = None
        try:
            assert self._responder is not None and self._stt is not None
            if self._hangup_owed:  # the goodbye was interrupted; the flow had ended
                self._hanging_up = True
                await self._hang_up()
                return
            actions = aiter(self._responder.handle(event))
            while True:
                ahead = self._loop.create_task(_next_action(actions), name=f"ahead-{self._sid}")
                if filler_at is not None:
                    await self._filler_while(ahead, filler_at)
                action = await ahead
                ahead = None
                if action is None:
                    break
                if first_action_at is None:
                    first_action_at = self._loop.time()
                if isinstance(action, Say):
                    filler_at = None  # the reply has started
                    if timing is None:
                        await self._say(action.text)
                    else:  # only the first utterance of a reply answers the turn
                        last_voiced_at, latency = timing
                        latency.llm_ttft_ms = (first_action_at - asked_at) * 1000
                        await self._say(action.text, latency, last_voiced_at)
                        timing = None
                elif isinstance(action, Listen):
                    self._listen(action)
                elif isinstance(action, Hangup):
                    hangup = True
                    record.status = "completed"
            if hangup:
                self._hanging_up = True
                await self._hang_up()
        except SocketClosed:
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
            if ahead is not None:
                await self._settle_ahead(ahead)
            self._snapshot()

    def _listen(self, action: Listen) -> None:
        assert self._stt is not None
        self._stt.set_hints(action.hints)
        self._turns.patience = action.patience

    async def _settle_ahead(self, ahead: asyncio.Task[Action | None]) -> None:
        """A reply cancelled while the responder was producing its next action: stop that;
        an action already produced is not lost when it matters after the reply (a Listen
        applies to the next turn, a Hangup is owed)."""
        if not ahead.done():
            ahead.cancel()
            await asyncio.wait([ahead])
        if ahead.cancelled() or ahead.exception() is not None:
            return
        action = ahead.result()
        if isinstance(action, Listen):
            self._listen(action)
        elif isinstance(action, Hangup):
            self._hangup_owed = True
            if self._record is not None:
                self._record.status = "completed"

    async def _filler_while(self, ahead: asyncio.Task[Action | None], deadline: float) -> None:
        """Wait for the responder's next action until ``deadline``; past it, say a filler
        while it keeps working (never two fillers in a row, never over other audio)."""
        wait_s = deadline - self._loop.time()
        if wait_s > 0:
            await asyncio.wait([ahead], timeout=wait_s)
        speaker = self._speaker
        if (ahead.done() or speaker.last_was_filler or speaker.speaking
                or speaker.hold is not None or self._hanging_up):
            return
        fillers = self._cfg.fillers
        if not fillers:
            return
        text = fillers[self._fillers_said % len(fillers)]
        self._fillers_said += 1
        self._deps.metrics.fillers.inc()
        log.info("filler call_sid=%s: the reply is slow", self._sid)
        await self._say(text, filler=True)

    def _start_warm_up(self) -> None:
        """Synthesize the flow's fixed sentences and the fillers this server has not cached
        yet, in the background — after the greeting (it is never delayed by the warm-up) and
        only with a voice that has not failed on this call."""
        if self._voice.failed:
            return
        sentences = (*self._cfg.fillers, *self._prompts)
        cache, voice = self._deps.prompt_cache, self._voice.voice
        if all((voice, sentence) in cache for sentence in sentences):
            return
        warm = cache.warm(voice, self._deps.tts, sentences)
        self._background.append(self._tg.create_task(warm, name=f"warm-{self._sid}"))

    # ---- speaking ------------------------------------------------------------------------------

    async def _say(
        self,
        text: str,
        latency: Latency | None = None,
        last_voiced_at: float | None = None,
        *,
        filler: bool = False,
    ) -> None:
        """Speak; with ``latency``, the first audio out completes the caller turn's timing."""
        on_first_audio = None
        if latency is not None and last_voiced_at is not None:
            measured, voiced_at = latency, last_voiced_at

            def on_first_audio(synth_at: float) -> None:
                sent_at = self._loop.time()
                measured.tts_ttfb_ms = (sent_at - synth_at) * 1000
                self._finish_latency(measured, sent_at - voiced_at)

        await self._speaker.say(text, filler=filler, latency=latency,
                                on_first_audio=on_first_audio)

    def _finish_latency(self, latency: Latency, turn_latency_s: float) -> None:
        latency.turn_latency_ms = turn_latency_s * 1000
        waited = (latency.endpoint_ms + latency.stt_final_ms + latency.llm_ttft_ms
                  + latency.tts_ttfb_ms)
        latency.server_overhead_ms = max(0.0, latency.turn_latency_ms - waited)
        self._deps.metrics.observe_turn(latency)

    async def _hang_up(self) -> None:
        """Let the last words play (their mark comes back), then end the call (module doc)."""
        await self._speaker.wait_played(self._socket.queued_ms() / 1000 + _HANGUP_MARGIN_S)
        self._hung_up = True
        end_call = self._deps.end_call
        if end_call is not None and not self._socket.gone:
            try:
                async with asyncio.timeout(_END_CALL_TIMEOUT_S):
                    await end_call(self._sid)
            except ProviderError as exc:
                self._provider_error(exc)
            except TimeoutError:
                self._provider_error(ProviderError("twilio", "the hang-up request timed out"))
            else:
                log.info("call_sid=%s ended through the REST API", self._sid)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_STOP_WAIT_S):
                        await self._stream_over.wait()
        await self._socket.close()

    def _tts_failed(self, exc: ProviderError) -> None:
        self._provider_error(exc)
        log.warning("tts failed call_sid=%s; speaking with the fallback", self._sid)

    def _provider_error(self, exc: ProviderError) -> None:
        self._deps.metrics.provider_errors.inc(exc.provider)
        log.warning("provider error call_sid=%s: %s", self._sid, exc)
        if self._record is not None:
            self._record.add_error(exc.provider, exc.message)


async def _next_action(actions: AsyncIterator[Action]) -> Action | None:
    """The responder's next action; None when it has no more."""
    try:
        return await anext(actions)
    except StopAsyncIteration:
        return None

