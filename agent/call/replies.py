"""The conversation of one call: the caller's turns and keypresses in order, one reply at a time.

The conversation task takes ended turns and keypresses from the inbox (``agent.call.inbox``),
gets each turn's final transcript and tells the floor (``agent.call.floor``) what was heard; the
floor answers whether to reply, to cancel a held reply or to resume it. Each reply runs as its
own task (the responder's actions: speak, listen, hang up), so that a barge-in can hold it
without cancelling it:
- words (or a keypress) after a barge-in: a real interruption. The reply is cancelled with
  everything below it, and the responder hears ``ReplyInterrupted`` with only what was heard;
- no words (a cough, a door, line noise) or only a backchannel ("uh-huh", "okay", or words
  that hold nothing for the question: ``agent.flow.backchannel``): not an interruption. The
  sentences the ``clear`` cut are played again from the first unheard one (their audio is
  kept until heard), then the held reply goes on, its current sentence from its start.

Fillers: when the caller's turn has ended and the responder has not produced anything to say
within ``filler_after_ms`` (a slow availability lookup, a slow model), the reply tells the floor;
the floor says whether a filler may be said (only in silence, never twice in a row). The filler
plays while the responder keeps working; an answer ready meanwhile is synthesized at once and
starts right after the filler's sentence (``agent.call.speaker``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from slotline.agent import tracing
from slotline.agent.call import floor as fl
from slotline.agent.call.calllog import Latency, Turn
from slotline.agent.call.inbox import TurnDone
from slotline.agent.call.media_socket import SocketClosed
from slotline.agent.call.playback import ReplyPlayback
from slotline.agent.call.prompt_cache import split_sentences
from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    DtmfPressed,
    Hangup,
    Listen,
    Prepare,
    ReplyInterrupted,
    ReportsQuestion,
    Say,
)
from slotline.providers.errors import ProviderError
from slotline.providers.tracing import Span

if TYPE_CHECKING:
    from slotline.agent.call.session import LiveCall

log = logging.getLogger(__name__)

# an event to reply to, the caller turn's timing, when the caller started waiting (fillers),
# the turn's span (None: the reply starts its own)
_Queued = tuple[CallEvent, tuple[float, Latency] | None, float | None, Span | None]


class Replies:
    def __init__(self, call: LiveCall) -> None:
        # the call owns its replies: a weak proxy back, so the two are no reference cycle and
        # an ended call is freed at once (agent.weak); its tasks end before the call does
        self._call: LiveCall = weakref.proxy(call)
        self._loop = asyncio.get_running_loop()
        self._reply_task: asyncio.Task[None] | None = None  # the reply running, if any
        self._interrupted: ReplyPlayback | None = None  # cut by words, not yet told
        self._on_hold: asyncio.Future[None] | None = None  # wakes the wait for a reply
        self._fillers_said = 0
        self._queued: deque[_Queued] = deque()  # replies waiting their turn, oldest first

    def hold(self) -> None:
        """The floor held the reply: stop waiting for it (the caller's words decide)."""
        if self._on_hold is not None and not self._on_hold.done():
            self._on_hold.set_result(None)

    def cancel(self) -> None:
        """The call is over."""
        if self._reply_task is not None:
            self._reply_task.cancel()

    # ---- the conversation ----------------------------------------------------------------------

    async def converse(self) -> None:
        call = self._call
        started = CallStarted(call.start.call_sid, dict(call.start.custom_parameters))
        self._queued.append((started, None, None, None))
        await self._run_queued()
        self._start_warm_up()
        while True:
            item = await call.inbox.get()
            if isinstance(item, DtmfPressed):  # a keypress is never noise
                if await self._decided(call.tell(fl.KeyPressed())):
                    self._queued.append((item, None, self._loop.time(), None))
            else:
                await self._caller_turn(item)
            await self._run_queued()

    async def _decided(self, commands: tuple[fl.FloorCommand, ...]) -> bool:
        """Carry out a held interruption's verdict; whether the caller's turn is answered."""
        if fl.Resume() in commands:
            await self._resume()
        if fl.CancelReply() in commands:
            await self._cancel_reply()
        return fl.StartReply() in commands

    async def _caller_turn(self, item: TurnDone) -> None:
        """The caller's turn has ended: the floor hears its transcript, and (unless it was
        noise over the agent) the responder hears it."""
        call = self._call
        decided_at = item.decided_at
        turn = tracing.turn_started("CallerSaid", since_s=self._loop.time() - item.last_voiced_at)
        try:
            with tracing.current(turn):  # the recogniser's request belongs to the turn
                transcript = await call.stt.finalize()
            text = transcript.text
        except ProviderError as exc:
            call.provider_error(exc)
            text = ""
        except Exception:  # e.g. the recogniser cannot respawn: the turn is heard as silence
            log.exception("recogniser failed call_sid=%s", call.sid)
            call.provider_error(ProviderError("stt", "recogniser failed"))
            text = ""
        except asyncio.CancelledError:
            tracing.end_turn(turn, cancelled=True)
            raise
        final_at = self._loop.time()
        turn.set_attribute("slotline.turn.words", len(text.split()))
        turn.set_attribute("slotline.turn.ended_by", item.reason)
        commands = call.tell(self._words_heard(text))
        if not await self._decided(commands):
            if fl.Resume() in commands and text:
                log.debug("forgiven call_sid=%s: %r", call.sid, text)
            tracing.end_turn(turn, noise=fl.Resume() in commands)
            return
        call.record.add_turn(Turn(role="caller", text=text, ended_by=item.reason,
                                  patience=item.patience))
        log.info("caller turn call_sid=%s words=%d ended_by=%s", call.sid,
                 len(text.split()), item.reason)
        log.debug("caller said call_sid=%s: %r", call.sid, text)
        latency = Latency(
            endpoint_ms=(decided_at - item.last_voiced_at) * 1000,
            stt_final_ms=(final_at - decided_at) * 1000,
        )
        interrupted, self._interrupted = self._interrupted, None
        if interrupted is not None:
            event = ReplyInterrupted(interrupted.heard_text, interrupted.unheard_text)
            self._queued.append((event, None, None, None))
        self._queued.append((CallerSaid(text), (item.last_voiced_at, latency), decided_at, turn))

    def _words_heard(self, text: str) -> fl.WordsHeard:
        """The transcript for the floor, with the question it may answer: the one the held
        reply is asking (``ReportsQuestion``), else the one the caller was last asked."""
        call = self._call
        responder = call.responder
        asking = responder.asking if isinstance(responder, ReportsQuestion) else None
        if asking is not None:
            return fl.WordsHeard(text, asking.kind, asking.region)
        return fl.WordsHeard(text, call.frames.answer_kind, call.frames.answer_region)

    async def _cancel_reply(self) -> None:
        """The held interruption was real: cancel the held reply; the responder will hear
        ``ReplyInterrupted`` with what was heard."""
        speaker = self._call.speaker
        hold = speaker.take_hold()
        task = self._reply_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        self._reply_task = None
        if hold is not None:
            last = speaker.release(hold)
            if last is not None:
                self._interrupted = last

    async def _resume(self) -> None:
        """The held interruption was not one: play what it cut again, then let the held
        reply go on."""
        call = self._call
        hold = call.speaker.take_hold()
        if hold is None:  # pragma: no cover - the floor pauses only after a clear
            return
        call.deps.metrics.false_interruptions.inc()
        log.info("false interruption call_sid=%s: resuming %d sentence(s)", call.sid,
                 len(hold.cut))
        try:
            replayed = await call.speaker.resume(hold)
        except SocketClosed:
            return
        commands = call.tell(fl.ResumeEnded(replayed))
        if fl.Unhold() in commands and self._reply_task is not None:
            await self._await_reply(self._reply_task)

    async def _run_queued(self) -> None:
        """Reply to the queued events in order; a barge-in holding a reply stops here (the
        rest wait until the interruption is decided)."""
        while self._queued and self._call.floor.may_reply:
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
            filler_at += self._call.cfg.filler_after_ms / 1000
        if span is None:
            span = tracing.turn_started(type(event).__name__)
        with tracing.current(span):  # the task keeps it: the reply's requests are the turn's
            task = self._call.tg.create_task(self._speak_reply(event, timing, filler_at),
                                             name=f"reply-{self._call.sid}")
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

    async def _speak_reply(
        self, event: CallEvent, timing: tuple[float, Latency] | None, filler_at: float | None
    ) -> None:
        call = self._call
        asked_at = self._loop.time()
        first_action_at: float | None = None
        hangup = False
        ahead: asyncio.Task[Action | None] | None = None
        filler: asyncio.Task[None] | None = None
        try:
            actions = aiter(call.responder.handle(event))
            while True:
                ahead = self._loop.create_task(_next_action(actions), name=f"ahead-{call.sid}")
                if filler_at is not None and filler is None:
                    filler = await self._filler_while(ahead, filler_at)
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
                    call.record.status = "completed"
                elif isinstance(action, Prepare):
                    self._prepare(action.text)
            if filler is not None:
                await filler  # the goodbye's wait for the last mark must see it
            if hangup:
                call.tell(fl.HangupAsked())
        except SocketClosed:
            return
        except ProviderError as exc:
            call.provider_error(exc)
            call.fail()
            call.tell(fl.HangupAsked())
        except Exception:  # a bug in a responder must end one call politely, not the server
            log.exception("reply failed call_sid=%s", call.sid)
            call.record.add_error("agent", "internal error while replying")
            call.fail()
            call.tell(fl.HangupAsked())
        finally:  # also when barge-in or the end of the call cancels the reply
            if filler is not None and not filler.done():
                filler.cancel()
                await asyncio.wait([filler])
            if ahead is not None:
                await self._settle_ahead(ahead)
            call.snapshot()

    def _listen(self, action: Listen) -> None:
        self._call.frames.listen(action)  # hints, patience and the kind of answer expected

    def _prepare(self, text: str) -> None:
        """Have the voice synthesize the first sentence of a likely next line now, beside the
        reply (``Prepare``): the rest of the line is synthesized while that sentence plays."""
        call = self._call
        sentences = split_sentences(text)
        if not sentences:
            return

        async def ahead() -> None:
            try:
                await call.voice.prepare(sentences[0])
            except Exception:  # an optimisation: it must never end the call
                log.exception("synthesis ahead failed call_sid=%s", call.sid)

        call.in_background(ahead(), "tts-ahead")

    async def _settle_ahead(self, ahead: asyncio.Task[Action | None]) -> None:
        """A reply cancelled while the responder was producing its next action: stop that;
        an action already produced is not lost when it matters after the reply (a Listen
        applies to the next turn, a Hangup is still asked for)."""
        if not ahead.done():
            ahead.cancel()
            await asyncio.wait([ahead])
        if ahead.cancelled() or ahead.exception() is not None:
            return
        action = ahead.result()
        if isinstance(action, Listen):
            self._listen(action)
        elif isinstance(action, Hangup):
            self._call.record.status = "completed"
            self._call.tell(fl.HangupAsked())

    async def _filler_while(
        self, ahead: asyncio.Task[Action | None], deadline: float
    ) -> asyncio.Task[None] | None:
        """Wait for the responder's next action until ``deadline``; past it, ask the floor
        for a filler and say it while the responder keeps working (the task saying it)."""
        call = self._call
        # Even past the deadline (a slow transcript), the responder gets its first step: an
        # answer it has at once is never preceded by a filler.
        await asyncio.wait([ahead], timeout=max(0.0, deadline - self._loop.time()))
        fillers = call.cfg.fillers
        if ahead.done() or not fillers:
            return None
        stalled = fl.ReplyStalled(after_filler=call.speaker.last_was_filler)
        if fl.SayFiller() not in call.tell(stalled):
            return None
        text = fillers[self._fillers_said % len(fillers)]
        self._fillers_said += 1
        call.deps.metrics.fillers.inc()
        log.info("filler call_sid=%s: the reply is slow", call.sid)
        return self._loop.create_task(self._say(text, filler=True), name=f"filler-{call.sid}")

    def _start_warm_up(self) -> None:
        """Synthesize the flow's fixed sentences and the fillers this server has not cached
        yet, in the background — after the greeting (it is never delayed by the warm-up) and
        only with a voice that has not failed on this call."""
        call = self._call
        if call.voice.failed:
            return
        sentences = (*call.cfg.fillers, *call.prompts)
        cache, voice = call.deps.prompt_cache, call.voice.voice
        if all((voice, sentence) in cache for sentence in sentences):
            return
        warm = cache.warm(voice, call.deps.tts, sentences)
        call.in_background(warm, "warm")

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

        await self._call.speaker.say(text, filler=filler, latency=latency,
                                     on_first_audio=on_first_audio)

    def _finish_latency(self, latency: Latency, turn_latency_s: float) -> None:
        latency.turn_latency_ms = turn_latency_s * 1000
        waited = (latency.endpoint_ms + latency.stt_final_ms + latency.llm_ttft_ms
                  + latency.tts_ttfb_ms)
        latency.server_overhead_ms = max(0.0, latency.turn_latency_ms - waited)
        self._call.deps.metrics.observe_turn(latency)


async def _next_action(actions: AsyncIterator[Action]) -> Action | None:
    """The responder's next action; None when it has no more."""
    try:
        return await anext(actions)
    except StopAsyncIteration:
        return None
