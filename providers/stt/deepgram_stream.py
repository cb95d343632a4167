"""One call's Deepgram recognition stream: batching, Finalize, replay after a drop, turns.

``DeepgramSttStream`` is the ``SttStream`` that ``DeepgramSpeechToText.open_stream`` returns;
the behaviour (audio batching and keepalives, turns ended by ``Finalize``, interims, replay of
unacknowledged audio on a reconnect, the errors) is described in ``providers/stt/deepgram.py``;
what results mean for a turn (pauses, events) is the sans-I/O ``deepgram_turn.DeepgramTurn``.
Audio offsets here are bytes of 8 kHz mu-law since the stream began.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from slotline.providers import tracing
from slotline.providers.base import AudioChunk, SpeechHints, SttEvent, Transcript
from slotline.providers.errors import ProtocolError, ProviderError, ProviderTimeout
from slotline.providers.stt import deepgram_wire as wire
from slotline.providers.stt._fanout import Fanout
from slotline.providers.stt.deepgram_keyterms import KeytermSync, keyterms_for
from slotline.providers.stt.deepgram_turn import DeepgramTurn

if TYPE_CHECKING:
    from slotline.providers.stt.deepgram import DeepgramSpeechToText

logger = logging.getLogger(__name__)

PROVIDER = "stt-deepgram"
BYTES_PER_S = 8000  # 8 kHz mu-law, one byte a sample
_MAX_FRAME_BYTES = 8000  # replayed audio goes out in frames of at most 1 s
# How often the sender looks at the clock (KeepAlive due, a partial batch stalled). Audio goes
# out when a whole batch is pushed, not on this tick: a stalled partial batch (the session
# stopped pushing mid-batch) waits one to two ticks.
_TICK_S = 0.1


class DeepgramSttStream:
    """One call's recognition stream. Audio offsets are bytes since the stream began."""

    def __init__(self, owner: DeepgramSpeechToText, call_sid: str) -> None:
        self._owner = owner
        self._call_sid = call_sid
        self._batch_bytes = owner.batch_bytes
        self._max_replay_bytes = owner.max_replay_bytes
        self._unacked = bytearray()  # audio no final result covers yet (replayed on a drop)
        self._unacked_base = 0  # offset of _unacked[0]
        self._sent = 0  # offset up to which the current connection has the audio
        self._origin = 0  # offset of the current connection's audio time zero
        self._wake = asyncio.Event()  # the sender has something to do
        self._voiced_end = 0  # offset just after the last voiced frame pushed
        self._turn = DeepgramTurn(call_sid)
        self._waiter: asyncio.Future[Transcript] | None = None
        self._finalize_lock = asyncio.Lock()
        self._last_send_at = 0.0
        self._pushes = 0  # frames pushed so far (the housekeeping tick tells a stall by it)
        self._pushes_at_tick = 0
        self._keepalive_due = False
        self._tick: asyncio.TimerHandle | None = None
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._failure: ProviderError | None = None
        self._close_requested = False
        self._closed = False
        self._transcripts: Fanout[Transcript] = Fanout()
        self._events: Fanout[SttEvent] = Fanout()
        self._messages: Fanout[wire.ServerMessage] = Fanout()
        self._keyterms = KeytermSync()
        self._keyterms.off = not owner.keyterm_updates
        # Counters for tests, logs and the bench.
        self.connections = 0
        self.reconnects = 0
        self.protocol_errors = 0
        self.timeouts = 0
        self.keepalives_sent = 0
        self.audio_sends = 0
        self.configures_sent = 0
        self.replayed_bytes = 0
        self.lost_bytes = 0

    # ---- the SttStream protocol ----------------------------------------------------------------

    def push_audio(self, chunk: AudioChunk) -> None:
        if self._closed or self._failure is not None:
            return
        self._pushes += 1
        unacked = self._unacked
        unacked += chunk.ulaw
        if chunk.voiced:
            self._voiced_end = self._unacked_base + len(unacked)
        if len(unacked) > self._max_replay_bytes:  # trim in 1 s steps, not every frame
            self._acknowledge(self._unacked_base + len(unacked) - self._max_replay_bytes
                              + BYTES_PER_S, lost=True)
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name=f"stt-deepgram-{self._call_sid}"
            )
        if self._unacked_base + len(unacked) - self._sent >= self._batch_bytes:
            self._wake.set()  # a whole batch: the sender wakes (a partial one waits, below)

    def set_hints(self, hints: SpeechHints) -> None:
        """The question's vocabulary becomes the stream's keyterms (a ``Configure``; Nova-3),
        sent with the next batch of audio (within ``batch_ms`` while audio flows; else with the
        next KeepAlive). Waking the sender for it would also send the partial batch early and
        shift every later batch's phase: on the cloud bench that took the time answer's early
        end away in 50 of 50 calls (turn p50 342 -> 382 ms)."""
        self._keyterms.want(keyterms_for(hints))

    @property
    def keyterms(self) -> tuple[str, ...]:
        """The keyterms Deepgram said are in effect on this connection."""
        return self._keyterms.applied

    async def finalize(self) -> Transcript:
        with tracing.request("deepgram", "stt finalize") as span:
            transcript = await self._finalize()
            span.set_attribute("slotline.words", len(transcript.text.split()))
            return transcript

    def pause(self) -> None:
        """Send ``Finalize`` now, behind the audio pushed so far (rules: ``DeepgramTurn``)."""
        if self._closed or self._failure is not None or self._runner is None:
            return
        if self._turn.pause(self._unacked_base + len(self._unacked), self._voiced_end):
            self._wake.set()

    def words_pending(self) -> bool:
        return self._failure is None and self._turn.owes_words()

    async def _finalize(self) -> Transcript:
        async with self._finalize_lock:
            if self._failure is not None:
                raise self._failure
            if self._runner is None or self._closed:  # nothing was ever pushed, or too late
                return Transcript(text="", is_final=True)
            end = self._unacked_base + len(self._unacked)
            ready = self._turn.finalize(end, self._voiced_end)
            if ready is not None:  # a pause answered it already
                self._acknowledge(min(end, self._sent))
                self._transcripts.publish(ready)
                return ready
            waiter: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            self._wake.set()
            try:
                async with asyncio.timeout(self._owner.finalize_timeout_s):
                    transcript = await waiter
            except TimeoutError:
                return self._finalize_timed_out()
            finally:
                self._waiter = None
        self._transcripts.publish(transcript)
        return transcript

    async def interim(self) -> AsyncIterator[Transcript]:
        async for transcript in self._transcripts.subscribe():
            yield transcript

    async def events(self) -> AsyncIterator[SttEvent]:
        async for event in self._events.subscribe():
            yield event

    async def messages(self) -> AsyncIterator[wire.ServerMessage]:
        """Deepgram's own messages, typed, for tools that study the vendor (not the call path:
        that reads ``events()``)."""
        async for message in self._messages.subscribe():
            yield message

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        runner = self._runner
        if runner is not None and not runner.done():
            if self._ws is not None:  # CloseStream: flush, final results, Metadata, close
                self._close_requested = True
                self._wake.set()
                try:
                    async with asyncio.timeout(self._owner.finalize_timeout_s):
                        await asyncio.shield(runner)
                except TimeoutError:
                    logger.warning("CloseStream unanswered call_sid=%s", self._call_sid)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ProviderError(PROVIDER, "stream closed"))
        self._transcripts.close()
        self._events.close()
        self._messages.close()
        logger.info(
            "deepgram stream closed call_sid=%s connections=%d reconnects=%d protocol_errors=%d "
            "timeouts=%d keepalives=%d audio_sends=%d configures=%d replayed_bytes=%d "
            "lost_bytes=%d",
            self._call_sid, self.connections, self.reconnects, self.protocol_errors,
            self.timeouts, self.keepalives_sent, self.audio_sends, self.configures_sent,
            self.replayed_bytes, self.lost_bytes,
        )

    # ---- turns ---------------------------------------------------------------------------------

    def _on_message(self, message: wire.ServerMessage) -> None:
        self._messages.publish(message)
        if isinstance(message, wire.Results):
            end = self._origin + round(message.end_s * BYTES_PER_S)
            if message.is_final:
                self._acknowledge(min(end, self._sent))
            events, done = self._turn.on_results(message, end, self._voiced_end)
            if done is not None:
                self._turn_done(done)
            else:
                self._transcripts.publish(Transcript(text=self._turn.text(), is_final=False))
        elif isinstance(message, wire.UtteranceEnd):
            last_word_end = self._origin + round(message.last_word_end_s * BYTES_PER_S)
            events = self._turn.on_utterance_end(last_word_end)
        elif isinstance(message, wire.ConfigureSuccess | wire.ConfigureFailure):
            self._configured(message)
            return
        else:
            if isinstance(message, wire.UnknownMessage):
                logger.debug("deepgram %s ignored call_sid=%s", message.type, self._call_sid)
            return
        for event in events:
            self._events.publish(event)

    def _configured(self, answer: wire.ConfigureSuccess | wire.ConfigureFailure) -> None:
        """Settle the ``Configure`` in flight. Keyterms wanted meanwhile go with the next batch,
        as ``set_hints``'s do: no wake here either."""
        if isinstance(answer, wire.ConfigureSuccess):
            self._keyterms.answered(ok=True)
        else:
            logger.warning("deepgram keyterms refused call_sid=%s code=%s: %s", self._call_sid,
                           answer.code, answer.description)
            self._keyterms.answered(ok=False, code=answer.code)

    def _turn_done(self, transcript: Transcript) -> None:
        """The turn's last Finalize was answered: its audio is never replayed again."""
        self._acknowledge(min(self._turn.ends_at, self._sent))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(transcript)

    def _finalize_timed_out(self) -> Transcript:
        """Return what the turn has, drop its audio and replace the (stalled) connection."""
        self.timeouts += 1
        transcript = self._turn.timed_out()
        self._acknowledge(self._turn.ends_at)  # not replayed: the connection is replaced
        error = ProviderTimeout(
            PROVIDER, f"no Finalize result within {self._owner.finalize_timeout_s:g} s"
        )
        logger.warning("%s call_sid=%s; reconnecting", error, self._call_sid)
        if self._ws is not None:
            self._ws.transport.abort()
        if not transcript.text:
            raise error
        self._report(error)
        self._transcripts.publish(transcript)
        return transcript

    def _acknowledge(self, offset: int, *, lost: bool = False) -> None:
        """Audio before ``offset`` will never be replayed."""
        count = offset - self._unacked_base
        if count <= 0:
            return
        del self._unacked[:count]
        self._unacked_base = offset
        if self._sent < offset:  # trimmed before it was ever sent (a long outage)
            self.lost_bytes += offset - self._sent
            self._sent = offset
            if lost:
                logger.warning("deepgram replay buffer full call_sid=%s: audio dropped",
                               self._call_sid)

    # ---- the connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._connect_and_serve()
        except Exception as exc:  # a bug here must fail the stream, not leave turns hanging
            logger.exception("deepgram stream crashed call_sid=%s", self._call_sid)
            self._fail(ProviderError(PROVIDER, f"internal error: {type(exc).__name__}"))

    async def _connect_and_serve(self) -> None:
        """Owns the socket for the stream's life: connect, serve, reconnect on a drop (when,
        and how often: the owner's ``ReconnectPolicy``)."""
        policy = self._owner.reconnect
        failures = 0  # attempts in a row that came to nothing (a refused or silent socket)
        while not self._close_requested:
            try:
                ws = await self._owner.connect()
            except ProviderError as exc:
                failures += 1
                if not policy.retries(exc, failures):
                    self._fail(exc)
                    return
                self._report(exc)
                await asyncio.sleep(policy.delay_s(failures, self._owner.random))
                continue
            # one span per connection; its parent is the call (this task was started in it)
            connection = {"slotline.connection": self.connections + 1}
            with tracing.request("deepgram", "stt stream", connection):
                heard_back = await self._serve(ws)
            if self._close_requested:
                return
            failures = 0 if heard_back else failures + 1
            if policy.gives_up(failures):
                self._fail(ProviderError(PROVIDER, "connection keeps dropping", retryable=True))
                return
            self.reconnects += 1
            await asyncio.sleep(policy.delay_s(failures, self._owner.random))

    async def _serve(self, ws: ClientConnection) -> bool:
        """Run one connection until it ends; True if the server sent anything on it."""
        self.connections += 1
        self._ws = ws
        self._origin = self._sent = self._unacked_base
        self._keyterms.reconnected()  # a new socket has none: the wanted ones go again
        self._turn.reconnected()  # a Finalize in flight goes again, at its place in the replay
        replay = len(self._unacked)
        if self.connections > 1:
            self.replayed_bytes += replay
            logger.info("deepgram reconnected call_sid=%s replaying_ms=%d",
                        self._call_sid, replay * 1000 // BYTES_PER_S)
        self._last_send_at = asyncio.get_running_loop().time()
        self._wake.set()
        sender = asyncio.create_task(self._send_loop(ws), name=f"stt-dg-send-{self._call_sid}")
        received = 0
        try:
            async for data in ws:
                received += 1
                try:
                    message = wire.parse_server_message(data)
                except ProtocolError as exc:
                    self.protocol_errors += 1
                    logger.warning("deepgram %s call_sid=%s", exc, self._call_sid)
                    self._report(ProviderError(PROVIDER, f"malformed message: {exc.code}"))
                    continue
                self._on_message(message)
        except ConnectionClosed:
            pass  # reported below with the close code
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self._ws = None
        if not self._close_requested:
            reason = wire.describe_close(ws.close_code or 1006, ws.close_reason or "")
            logger.warning("deepgram connection lost call_sid=%s close=%s", self._call_sid, reason)
            self._report(ProviderError(PROVIDER, f"connection lost: {reason}", retryable=True))
        return received > 0

    async def _send_loop(self, ws: ClientConnection) -> None:
        """Sends what ``push_audio``, ``finalize`` and ``aclose`` ask for. Waking happens once
        per whole batch; everything time-driven (a stalled partial batch, KeepAlive) is left to
        one housekeeping timer per connection, so a batch costs no timer of its own."""
        loop = asyncio.get_running_loop()
        tick_s = min(_TICK_S, self._owner.keepalive_s / 2)
        self._keepalive_due = False
        self._tick = loop.call_later(tick_s, self._on_tick, loop, tick_s)
        try:
            while True:
                await self._send_pending(ws)
                if self._close_requested:
                    await ws.send(wire.CLOSE_STREAM)
                    return
                if self._keepalive_due:
                    self._keepalive_due = False
                    if not self._has_pending() and self._keepalive_owed(loop):
                        await ws.send(wire.KEEPALIVE)
                        self.keepalives_sent += 1
                        self._last_send_at = loop.time()
                    continue
                self._wake.clear()
                await self._wake.wait()
        except ConnectionClosed:
            pass  # the receive side sees the same close and handles it
        finally:
            self._tick.cancel()

    def _on_tick(self, loop: asyncio.AbstractEventLoop, tick_s: float) -> None:
        """Housekeeping: flush a partial batch no frame has joined since the last tick (the
        caller's audio stalled), and ask for a KeepAlive when nothing went out for a while."""
        if self._has_pending():
            if self._pushes == self._pushes_at_tick:
                self._wake.set()
        elif self._keepalive_owed(loop):
            self._keepalive_due = True
            self._wake.set()
        self._pushes_at_tick = self._pushes
        self._tick = loop.call_later(tick_s, self._on_tick, loop, tick_s)

    def _keepalive_owed(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop.time() - self._last_send_at >= self._owner.keepalive_s

    def _has_pending(self) -> bool:
        return self._sent < self._unacked_base + len(self._unacked)

    async def _send_pending(self, ws: ClientConnection) -> None:
        """Send the question's keyterms when due, then all pushed audio, with the Finalize (if
        any) at its place in it."""
        terms = self._keyterms.due()
        if terms is not None:
            self._keyterms.sent(terms)  # before the await: the answer may come first
            await ws.send(wire.encode_configure(terms))
            self.configures_sent += 1
        while True:
            end = self._unacked_base + len(self._unacked)
            finalize_at = self._turn.due()
            if finalize_at is not None and self._sent >= finalize_at:
                self._turn.sent()  # before the await: an answer may come before it returns
                await ws.send(wire.FINALIZE)
                continue
            limit = end if finalize_at is None else finalize_at
            if self._sent >= limit:
                return
            start = self._sent - self._unacked_base
            data = bytes(self._unacked[start : start + min(limit - self._sent, _MAX_FRAME_BYTES)])
            await ws.send(data)
            self._sent += len(data)
            self.audio_sends += 1
            self._last_send_at = asyncio.get_running_loop().time()

    def _report(self, error: ProviderError) -> None:
        if self._owner.on_error is not None:
            self._owner.on_error(error)

    def _fail(self, error: ProviderError) -> None:
        """Give up on the stream: finalize raises ``error`` from now on."""
        logger.error("deepgram stream failed call_sid=%s: %s", self._call_sid, error)
        self._failure = error
        self._unacked.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
