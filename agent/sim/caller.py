"""A simulated phone caller: plays Twilio's side of a Media Stream against a real WebSocket.

It does what Twilio and a person on the phone do together: sends ``connected`` and ``start``,
then one 160-byte mu-law frame every 20 ms for the whole call (scheduled at ``t0 + n * 20 ms``
on the monotonic clock, so it never drifts; lateness of each frame is recorded), speaking the
script's utterances and digits when their turn comes and silence (0xFF) otherwise. Frames
are prepared once per recording (``speech_frames``) and many callers share their 20 ms timers
(``frame_clock``: ``t0`` is put on a 2 ms grid); each frame is sent straight from that timer
(``ws_send``: no task switch or coroutine per frame), so a frame costs a string concatenation
and a write. The server's
audio goes into a playout buffer that drains at 8 bytes/ms; a server ``mark`` is echoed when
playout reaches it and ``clear`` empties the buffer and echoes every pending mark at once (the
echo goes out with the next frame, so its resolution is one 20 ms frame, as on a phone line).

A step waits for the agent's reply to the previous step (or the greeting) to finish playing:
buffer empty and no new agent audio for ``agent_quiet_ms``, then a human ``pause_ms`` after the
playout drained. A server that does not speak first is met like a person would meet silence on
the line: with ``greeting_wait_s`` set, the caller speaks its first step once the stream has been
up that long without any agent audio (``CallerReport.spoke_first``). A step with
``interrupt_after_ms`` barges in once that much of the reply has played. ``choose_step`` makes
the caller answer what it was asked: when a step is due it picks which of the steps not yet
played comes now (or None: hang up), as a person picks the answer to the question they heard.
``turn_latency_ms`` runs from sending the caller's last voiced frame to the arrival of the
first agent audio after it; a frame is voiced when its RMS is within ``VOICED_WITHIN_DB`` of the
utterance's loudest frame and above ``VOICED_FLOOR_RMS`` (-60 dBFS).

For the benchmark it also records what a person on the line would notice: ``bargein_ms`` (the
interruption's first voiced frame sent → ``clear`` received), underruns of the agent's audio
(``AgentTurn.gaps_ms``) and how late each of its own frames left (``SendLateness.samples_ms``, so
an overloaded client is not blamed on the server). Setting the ``hangup`` event makes the caller
hang up at its next frame.

Used by ``slotline demo``, the tests and the benchmark harness: ``run_caller(url, script)``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import wave
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
import numpy as np
import numpy.typing as npt

from slotline.agent.sim.frame_clock import FrameClock
from slotline.agent.sim.playout import BYTES_PER_MS, AgentTurn, AgentTurnLog, Playout
from slotline.agent.sim.speech_frames import (
    SILENCE_FRAME,
    SILENCE_PAYLOAD,
    MediaText,
    PreparedSpeech,
    prepare,
    voiced_span,
)
from slotline.agent.sim.ws_send import TextSender, sync_sender
from slotline.audio.framing import FRAME_MS, SAMPLE_RATE_HZ
from slotline.audio.mulaw import encode_array
from slotline.audio.resample import resample
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw

logger = logging.getLogger(__name__)

__all__ = ["SILENCE_FRAME", "CallerReport", "CallerTurn", "PressDigit", "SendLateness", "Speak",
           "Step", "last_voiced_frame", "load_wav_ulaw", "run_caller", "voiced_span"]

_FRAME_S = FRAME_MS / 1000
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Speak:
    """Speak ``audio`` (8 kHz mu-law). Defaults: after the agent's reply and a 300 ms pause."""

    audio: bytes
    pause_ms: int = 300
    interrupt_after_ms: int | None = None  # barge in after this much reply audio has played
    wait_for_agent: bool = True  # False: do not wait for a reply to the previous step

    def __post_init__(self) -> None:
        if not self.audio:
            raise ValueError("Speak needs some audio")

    @classmethod
    def from_wav(
        cls,
        path: str | Path,
        *,
        pause_ms: int = 300,
        interrupt_after_ms: int | None = None,
        wait_for_agent: bool = True,
    ) -> Speak:
        return cls(load_wav_ulaw(path), pause_ms, interrupt_after_ms, wait_for_agent)


@dataclass(frozen=True, slots=True)
class PressDigit:
    """Send one DTMF digit, timed like ``Speak``."""

    digit: str
    pause_ms: int = 300
    interrupt_after_ms: int | None = None
    wait_for_agent: bool = True

    def __post_init__(self) -> None:
        if self.digit not in DTMF_DIGITS or len(self.digit) != 1:
            raise ValueError(f"not a DTMF digit: {self.digit!r}")


Step = Speak | PressDigit


@dataclass(frozen=True, slots=True)
class CallerTurn:
    step_index: int
    kind: Literal["say", "dtmf"]
    barge_in: bool  # started while agent audio was still playing
    turn_latency_ms: float | None  # None when no agent audio followed
    reply: AgentTurn | None
    ended_at_s: float | None = None  # monotonic: last voiced frame sent (a digit: its send)
    bargein_ms: float | None = None  # barge-in turns: first voiced frame sent → clear received
    first_voiced_at_s: float | None = None  # monotonic: first voiced frame sent


@dataclass(frozen=True, slots=True)
class SendLateness:
    """How late the caller's own 20 ms frames left, against ``t0 + n * 20 ms``."""

    frames: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples_ms: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros(0, np.float32), compare=False, repr=False
    )  # every frame's lateness, in sending order


@dataclass(frozen=True, slots=True)
class CallerReport:
    stream_sid: str
    call_sid: str
    account_sid: str
    turns: tuple[CallerTurn, ...]
    agent_turns: tuple[AgentTurn, ...]  # every agent turn, the greeting first
    closed_by: Literal["caller", "server"]
    send_lateness: SendLateness
    duration_s: float
    errors: tuple[str, ...]
    started_at_s: float = 0.0  # monotonic clock when the call began
    close_code: int | None = None  # the WebSocket close code (1000 = normal)
    hung_up_early: bool = False  # the ``hangup`` event ended the call before its script did
    clears: int = 0  # ``clear`` messages received
    first_agent_audio_at_s: float | None = None  # monotonic: the agent's first audio arrived
    spoke_first: bool = False  # no greeting came within ``greeting_wait_s``; the caller began


def load_wav_ulaw(path: str | Path) -> bytes:
    """A 16-bit PCM WAV file as 8 kHz mono mu-law (channels averaged, resampled if needed)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * wav.getsampwidth()}-bit samples, expected 16-bit")
        channels, rate_hz = wav.getnchannels(), wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate_hz != SAMPLE_RATE_HZ:
        samples = resample(samples, rate_hz, SAMPLE_RATE_HZ)
    return encode_array(samples)


def last_voiced_frame(ulaw: bytes) -> int | None:
    """Index of the utterance's last voiced 20 ms frame (rule in the module docstring)."""
    span = voiced_span(ulaw)
    return None if span is None else span[1]


def _b64_size(text: str) -> int | None:
    """How many bytes the base64 ``text`` holds, from its length; None when it is not plain
    padded base64 inside a JSON string (then the full parser decides, and says what is wrong).
    The characters are not checked one by one (``keep_audio`` decodes them all)."""
    if len(text) % 4 or '"' in text or "\\" in text:
        return None
    return len(text) // 4 * 3 - (text[-2:].count("=") if text else 0)


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)  # Twilio SIDs: two letters + 32 hex digits


@dataclass(slots=True)
class _CallerTurnLog:
    step_index: int
    kind: Literal["say", "dtmf"]
    barge_in: bool
    latency_ms: float | None = None
    reply: AgentTurnLog | None = None
    ended_at_s: float | None = None
    first_voiced_at_s: float | None = None
    bargein_ms: float | None = None


@dataclass(slots=True)
class _Speech:
    prepared: PreparedSpeech
    turn: _CallerTurnLog | None = None
    next_frame: int = 0


class _Frames:
    """A caller's frames sent from the clock's timers: where they start and how they end."""

    __slots__ = ("done", "n", "send", "stopped", "t0_s")

    def __init__(self, send: TextSender, t0_s: float, done: asyncio.Future[None]) -> None:
        self.send, self.t0_s, self.done = send, t0_s, done
        self.stopped = False
        self.n = 0  # the next frame's number

    def finish(self, error: BaseException | None) -> None:
        self.stopped = True
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)


class _Call:
    """One simulated call: the tick (every 20 ms) decides what to send; the receiver keeps the
    playout and the turn bookkeeping up to date. Both run on one loop, so no locks."""

    def __init__(
        self,
        script: Sequence[Step],
        custom_parameters: Mapping[str, str],
        account_sid: str,
        agent_quiet_ms: int,
        reply_timeout_s: float,
        timeout_s: float,
        hangup: asyncio.Event | None = None,
        on_turn_latency: Callable[[float], None] | None = None,
        call_sid: str | None = None,
        greeting_wait_s: float | None = None,
        clock: FrameClock | None = None,
        keep_audio: bool = True,
        awaited_sends: bool = False,
        choose_step: Callable[[Sequence[int]], int | None] | None = None,
    ) -> None:
        self.stream_sid, self.account_sid = _sid("MZ"), account_sid
        self._awaited_sends = awaited_sends
        self.call_sid = call_sid or _sid("CA")
        self._script = tuple(script)
        self._speeches = [_Speech(prepare(s.audio)) if isinstance(s, Speak) else None
                          for s in script]
        self._media = MediaText(self.stream_sid)
        self._media_prefix = tw.encode_media(self.stream_sid, b"")[: -len('"}}')]
        self._keep_audio = keep_audio
        self._clock = clock or FrameClock()
        self._custom_parameters = dict(custom_parameters)
        self._quiet_s = agent_quiet_ms / 1000
        self._reply_timeout_s = reply_timeout_s
        self._timeout_s = timeout_s
        self._started_s = time.monotonic()
        self._deadline_s = self._started_s + timeout_s
        self._playout = Playout(self._started_s)
        self._seq = 0
        self._unplayed = list(range(len(self._script)))  # step indices, in the script's order
        self._choose_step = choose_step
        self._speech: _Speech | None = None
        self._speech_end_s = self._started_s
        self._turns: list[_CallerTurnLog] = []
        self._agent_turns: list[AgentTurnLog] = []
        self._reply_for: _CallerTurnLog | None = None  # the turn whose reply is yet to come
        self._boundary_s = self._started_s  # when that turn's last voiced frame was sent
        self._last_audio_s: float | None = None
        self._echoes: list[str] = []
        self._lateness_ms: array[float] = array("f")
        self._errors: list[str] = []
        self._hanging_up = False
        self._server_closed = False
        self._hangup = hangup
        self._on_turn_latency = on_turn_latency
        self._hung_up_early = False
        self._bargein: _CallerTurnLog | None = None  # the interruption awaiting its clear
        self._clears = 0
        self._close_code: int | None = None
        self._first_audio_s: float | None = None
        self._greeting_wait_s = greeting_wait_s
        self._streaming_since_s: float | None = None  # ``start`` sent: the line is open
        self._spoke_first = False
        self._frames: _Frames | None = None  # set when frames go out from the clock's timers

    async def run(self, ws: aiohttp.ClientWebSocketResponse) -> CallerReport:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._send_loop(ws), name=f"caller-send-{self.call_sid}")
            tasks.create_task(self._receive_loop(ws), name=f"caller-receive-{self.call_sid}")
        return self._report(time.monotonic())

    # --- sending ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            await ws.send_str(tw.encode_connected())
            start = tw.encode_start(
                self.stream_sid,
                self.account_sid,
                self.call_sid,
                sequence_number=self._next_seq(),
                custom_parameters=self._custom_parameters,
            )
            await ws.send_str(start)
            t0_s = self._clock.align(time.monotonic())
            self._streaming_since_s = t0_s
            send = None if self._awaited_sends else sync_sender(ws)
            if send is None:
                await self._frames_awaited(ws, t0_s)
            else:
                await self._frames_called(send, t0_s)
            if self._hanging_up:
                await ws.close()
        except ConnectionError:  # the server went away mid-send; the receiver records it
            logger.debug("send failed, socket closing call_sid=%s", self.call_sid)

    async def _frames_awaited(self, ws: aiohttp.ClientWebSocketResponse, t0_s: float) -> None:
        """Frame ``n`` at ``t0 + n * 20 ms`` until hang-up, each send awaited."""
        clock, n = self._clock, 0
        while not self._server_closed:
            target_s = t0_s + n * _FRAME_S
            await clock.until(target_s)
            now = time.monotonic()
            if self._server_closed:
                return
            for text in self._tick(now, n):
                await ws.send_str(text)
            if self._hanging_up:
                return
            self._lateness_ms.append((now - target_s) * 1000)
            n += 1

    async def _frames_called(self, send: TextSender, t0_s: float) -> None:
        """The same frames, each sent from the shared clock's timer (``_frame``) with no task
        switch; returns at hang-up (or raises what a send raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        frames = self._frames = _Frames(send, t0_s, done)
        self._clock.every(t0_s, self._frame)
        try:
            await done
        finally:
            frames.stopped = True  # cancelled: the next timer sends nothing

    def _frame(self) -> bool:
        """Frame ``frames.n``, called by the clock every 20 ms; False when the frames end."""
        frames = self._frames
        if frames is None or frames.stopped:
            return False
        n = frames.n
        target_s = frames.t0_s + n * _FRAME_S
        now = time.monotonic()
        try:
            if self._server_closed:
                frames.finish(None)
                return False
            for text in self._tick(now, n):
                frames.send(text)
        except Exception as exc:  # handed to the send task, which raises it
            frames.finish(exc)
            return False
        if self._hanging_up:
            frames.finish(None)
            return False
        self._lateness_ms.append((now - target_s) * 1000)
        frames.n = n + 1
        return True

    def _tick(self, now: float, n: int) -> list[str]:
        """What to send for frame ``n``: mark echoes, then a digit and the frame, or ``stop``."""
        out: list[str] = []
        playout = self._playout
        if playout.busy:
            self._echoes += playout.advance(now)
        if self._echoes:  # rare: most frames echo nothing
            out = [tw.encode_mark_echo(self.stream_sid, self._next_seq(), m) for m in self._echoes]
            self._echoes.clear()
        if now >= self._deadline_s:
            self._errors.append(f"timeout: call still running after {self._timeout_s} s")
            return out + [self._stop()]
        if self._hangup is not None and self._hangup.is_set():
            self._hung_up_early = True
            return out + [self._stop()]
        speech = self._speech
        if speech is not None:  # speaking: the next frame of the utterance
            self._seq += 1
            out.append(self._media.frame(self._seq, n + 1, n * FRAME_MS,
                                         self._speech_frame(speech, now)))
            return out
        step = self._script[self._unplayed[0]] if self._unplayed else None
        if self._ready(step, now):
            index = self._chosen() if step is not None else None
            if index is None:
                return out + [self._stop()]
            out += self._begin(index, now)
        elif self._gave_up(step, now):
            return out + [self._stop()]
        speech = self._speech
        payload = SILENCE_PAYLOAD if speech is None else self._speech_frame(speech, now)
        out.append(self._media.frame(self._next_seq(), n + 1, n * FRAME_MS, payload))
        return out

    def _stop(self) -> str:
        self._hanging_up = True
        return tw.encode_stop(self.stream_sid, self._next_seq(), self.account_sid, self.call_sid)

    def _awaited_reply(self) -> AgentTurnLog | None:
        """The reply to the latest caller turn; before any caller turn, the greeting."""
        if self._turns:
            return self._turns[-1].reply
        return self._agent_turns[-1] if self._agent_turns else None

    def _ready(self, step: Step | None, now: float) -> bool:
        """Is it time for ``step`` (None: the end of the script, i.e. hang up)?"""
        reply = self._awaited_reply()
        playing = self._playout.busy
        barge_in_ms = step.interrupt_after_ms if step is not None else None
        if barge_in_ms is not None and playing and reply is not None:
            if reply.played_bytes >= barge_in_ms * BYTES_PER_MS:
                return True
        if reply is None and (step is None or step.wait_for_agent) and not self._no_greeting(now):
            return False
        if playing or (self._last_audio_s is not None and now - self._last_audio_s < self._quiet_s):
            return False
        pause_s = step.pause_ms / 1000 if step is not None else 0.0
        return now >= max(self._playout.drained_at_s, self._speech_end_s) + pause_s

    def _no_greeting(self, now: float) -> bool:
        """True once the line has been open ``greeting_wait_s`` with no agent audio and no
        caller turn yet: the caller speaks first (a server that waits to be spoken to)."""
        if self._greeting_wait_s is None or self._turns or self._agent_turns:
            return False
        since = self._streaming_since_s
        if since is None or now - since < self._greeting_wait_s:
            return False
        self._spoke_first = True
        return True

    def _gave_up(self, step: Step | None, now: float) -> bool:
        """True (and an error recorded) when the awaited reply is overdue."""
        if self._awaited_reply() is not None or (step is not None and not step.wait_for_agent):
            return False
        if now - self._boundary_s < self._reply_timeout_s:
            return False
        self._errors.append(f"no agent reply within {self._reply_timeout_s} s")
        return True

    def _chosen(self) -> int | None:
        """The step due now: the script's next, or ``choose_step``'s pick of those unplayed."""
        if self._choose_step is None:
            return self._unplayed[0]
        index = self._choose_step(tuple(self._unplayed))
        if index is not None and index not in self._unplayed:
            raise ValueError(f"choose_step picked step {index}, not one of {self._unplayed}")
        return index

    def _begin(self, index: int, now: float) -> list[str]:
        step = self._script[index]
        kind: Literal["say", "dtmf"] = "say" if isinstance(step, Speak) else "dtmf"
        turn = _CallerTurnLog(index, kind, barge_in=self._playout.busy)
        self._turns.append(turn)
        self._bargein = None
        self._speech = self._speeches[index]
        self._unplayed.remove(index)
        if self._speech is not None:
            self._speech.turn = turn
            return []
        assert isinstance(step, PressDigit)
        self._reply_for, self._boundary_s, self._speech_end_s = turn, now, now
        turn.ended_at_s = now
        return [tw.encode_dtmf(self.stream_sid, self._next_seq(), step.digit)]

    def _speech_frame(self, speech: _Speech, now: float) -> str:
        """The next frame's payload (base64), with the turn's bookkeeping at its voiced
        edges."""
        index = speech.next_frame
        speech.next_frame += 1
        turn, prepared = speech.turn, speech.prepared
        if index == prepared.first_voiced and turn is not None:
            turn.first_voiced_at_s = now
            if turn.barge_in:
                self._bargein = turn
        if index == prepared.last_voiced:
            self._reply_for, self._boundary_s = turn, now
            if turn is not None:
                turn.ended_at_s = now
        if index + 1 >= prepared.frames:
            self._speech = None
            self._speech_end_s = now + _FRAME_S  # the frame lasts 20 ms once sent
        return prepared.payloads[index]

    # --- receiving --------------------------------------------------------------------------

    async def _receive_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            now = time.monotonic()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._on_text(msg.data, now)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self._errors.append("binary_frame: the server sent a binary frame")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                self._errors.append(f"websocket error: {ws.exception()!r}")
        self._close_code = ws.close_code
        if not self._hanging_up:
            self._server_closed = True
            logger.info("server closed the stream call_sid=%s", self.call_sid)

    def _on_text(self, data: str, now: float) -> None:
        if not self._keep_audio and data.startswith(self._media_prefix) and data.endswith('"}}'):
            # this stream's media, its audio counted, not decoded (most messages)
            size = _b64_size(data[len(self._media_prefix) : -3])
            if size is not None:
                self._echoes += self._playout.advance(now)
                self._on_agent_audio(b"", size, now)
                return
        try:
            msg = tw.parse_outbound(data)
        except ProtocolError as exc:
            self._errors.append(str(exc))
            return
        if msg.stream_sid != self.stream_sid:
            self._errors.append(f"stream_mismatch: {msg.stream_sid!r}")
            return
        self._echoes += self._playout.advance(now)
        if isinstance(msg, tw.OutboundMedia):
            self._on_agent_audio(msg.payload if self._keep_audio else b"", len(msg.payload), now)
        elif isinstance(msg, tw.OutboundMark):
            current = self._agent_turns[-1] if self._agent_turns else None
            if self._playout.push_mark(msg.name, current):
                self._echoes.append(msg.name)
        else:
            self._clears += 1
            self._echoes += self._playout.clear(now)
            interruption, self._bargein = self._bargein, None
            if interruption is not None and interruption.first_voiced_at_s is not None:
                interruption.bargein_ms = (now - interruption.first_voiced_at_s) * 1000

    def _on_agent_audio(self, payload: bytes, size: int, now: float) -> None:
        """``size`` bytes of agent audio (``payload``: them, or nothing when not kept)."""
        if not size:
            return
        awaiting = self._reply_for
        if awaiting is not None or not self._agent_turns:
            self._agent_turns.append(AgentTurnLog())
        turn = self._agent_turns[-1]
        if awaiting is not None:
            awaiting.reply = turn
            awaiting.latency_ms = (now - self._boundary_s) * 1000
            self._reply_for = None
            if self._on_turn_latency is not None:
                self._on_turn_latency(awaiting.latency_ms)
        turn.audio += payload
        turn.audio_bytes += size
        self._playout.push_audio(turn, size, now)
        self._last_audio_s = now
        if self._first_audio_s is None:
            self._first_audio_s = now

    # --- result -----------------------------------------------------------------------------

    def _report(self, now: float) -> CallerReport:
        self._playout.advance(now)
        frozen = {id(turn): turn.freeze() for turn in self._agent_turns}
        turns = tuple(
            CallerTurn(
                t.step_index,
                t.kind,
                t.barge_in,
                t.latency_ms,
                None if t.reply is None else frozen[id(t.reply)],
                t.ended_at_s,
                t.bargein_ms,
                t.first_voiced_at_s,
            )
            for t in self._turns
        )
        samples = np.array(self._lateness_ms, dtype=np.float32)
        lateness = samples if samples.size else np.zeros(1, np.float32)
        p50, p99 = np.percentile(lateness, [50, 99])
        report = CallerReport(
            stream_sid=self.stream_sid,
            call_sid=self.call_sid,
            account_sid=self.account_sid,
            turns=turns,
            agent_turns=tuple(frozen.values()),
            closed_by="caller" if self._hanging_up else "server",
            send_lateness=SendLateness(
                len(self._lateness_ms), float(p50), float(p99), float(lateness.max()), samples
            ),
            duration_s=now - self._started_s,
            errors=tuple(self._errors),
            started_at_s=self._started_s,
            close_code=self._close_code,
            hung_up_early=self._hung_up_early,
            clears=self._clears,
            first_agent_audio_at_s=self._first_audio_s,
            spoke_first=self._spoke_first,
        )
        logger.info(
            "caller done call_sid=%s closed_by=%s turns=%d errors=%d",
            self.call_sid,
            report.closed_by,
            len(turns),
            len(report.errors),
        )
        return report


async def run_caller(
    url: str,
    script: Sequence[Step],
    *,
    custom_parameters: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    agent_quiet_ms: int = 800,
    timeout_s: float = 120,
    reply_timeout_s: float = 15.0,
    account_sid: str | None = None,
    session: aiohttp.ClientSession | None = None,
    hangup: asyncio.Event | None = None,
    on_turn_latency: Callable[[float], None] | None = None,
    call_sid: str | None = None,
    greeting_wait_s: float | None = None,
    clock: FrameClock | None = None,
    keep_audio: bool = True,
    awaited_sends: bool = False,
    choose_step: Callable[[Sequence[int]], int | None] | None = None,
) -> CallerReport:
    """Phone ``url`` (a Twilio Media Streams WebSocket), play ``script``, hang up, report.

    ``reply_timeout_s``: how long a step waits for the agent's reply before the caller records
    an error and hangs up. Pass ``session`` to share one HTTP session across many callers.
    Set ``hangup`` to make the caller hang up now (``CallerReport.hung_up_early``), as Twilio
    ends the stream of a call ended through its API; ``call_sid``: the ``callSid`` to announce
    (default: a random one);
    ``on_turn_latency`` hears each ``turn_latency_ms`` as it is measured (live progress).
    ``greeting_wait_s``: speak first when no agent audio came this long after ``start`` (None:
    wait for a greeting until ``reply_timeout_s``, then fail). ``clock``: share one
    ``FrameClock`` between many callers on a loop (their frames then share timers).
    ``keep_audio=False``: the agent's audio is counted, not kept (``AgentTurn.audio`` empty,
    ``audio_bytes`` and the timings as ever), and this stream's media messages are read by
    their known layout without decoding the base64 (the benchmark's callers).
    ``awaited_sends``: each frame awaits aiohttp's ``send_str`` from the call's own task, as
    where the writer cannot be reached (``ws_send.sync_sender`` None), instead of being written
    from the shared clock's timer. ``choose_step``: given the indices of the steps not played
    yet (in script order), the one to play now, or None to hang up (default: the first).
    Failing to connect raises ``aiohttp.ClientError``; everything after is in the report.
    """
    call = _Call(
        script,
        custom_parameters or {},
        account_sid or _sid("AC"),
        agent_quiet_ms,
        reply_timeout_s,
        timeout_s,
        hangup,
        on_turn_latency,
        call_sid,
        greeting_wait_s,
        clock,
        keep_audio,
        awaited_sends,
        choose_step,
    )
    owned = session is None
    http = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10))
    try:
        ws_timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
        async with http.ws_connect(url, headers=headers, timeout=ws_timeout) as ws:
            return await call.run(ws)
    finally:
        if owned:
            await http.close()
