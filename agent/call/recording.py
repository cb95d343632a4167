"""One call's recording, sans-I/O: both sides on one timeline, as the caller heard them.

Left channel, the caller: every inbound 20 ms frame at its place on the stream's timeline. The
place is counted in frames (frame k lies k × 20 ms after the first), not read off the arrival
clock: a network stall delivers frames late and in a burst, and counting puts them back where
they belong. Only when Twilio's media timestamp runs at least a frame ahead of the count —
frames that never came — is the gap filled with silence (timestamps are validated upstream:
they never go backwards nor ahead of real time, ``twilio_media.InboundStream``).

Right channel, the agent: Twilio plays the audio it is sent back to back from when it arrives,
after what it still holds. Each piece sent is placed at ``max(sent at, end of what is queued)``
on the server's clock — the model ``audio.pacing`` paces by. A ``clear`` drops what has not
played, so the channel is cut at the clear's time: the recording holds what the caller heard,
not what was sent. The end of the call cuts it the same way. (Marks are not needed for this:
audio and ``clear`` travel the same path, so the play clock started from when each piece left
the server is the one Twilio played by, give or take the network's jitter.)

Both channels are kept as mu-law (one byte a sample) in growing ``bytearray``s: a frame costs
one append and nothing is decoded while the call runs. Decoding to 16-bit PCM stereo happens
once, after the call and off the event loop (``stereo_pcm``). ``max_duration_s`` bounds what a
call can hold in memory; past it audio is dropped and ``truncated`` says so.
"""

from __future__ import annotations

import numpy as np

from slotline.audio.framing import FRAME_SAMPLES, SAMPLE_RATE_HZ, ULAW_SILENCE
from slotline.audio.mulaw import decode_array

_SAMPLES_PER_MS = SAMPLE_RATE_HZ // 1000  # mu-law: one byte per sample
_SILENCE = memoryview(bytes([ULAW_SILENCE]) * SAMPLE_RATE_HZ)  # a second, sliced for gaps


class CallTimeline:
    """The caller's and the agent's audio of one call on the server's clock (seconds, e.g.
    ``loop.time()``), from ``origin_s`` — when the stream started."""

    __slots__ = ("_agent", "_caller", "_caller_offset", "_max_samples", "_origin_s", "ended",
                 "truncated")

    def __init__(self, origin_s: float, max_duration_s: float) -> None:
        if max_duration_s <= 0:
            raise ValueError(f"max_duration_s must be positive, got {max_duration_s}")
        self._origin_s = origin_s
        self._max_samples = int(max_duration_s * SAMPLE_RATE_HZ)
        self._caller = bytearray()  # mu-law; its length is where the next frame goes
        self._agent = bytearray()  # mu-law; its length is where queued agent audio ends
        self._caller_offset: int | None = None  # sample of media timestamp 0 (first frame)
        self.truncated = False  # audio past max_duration_s was dropped
        self.ended = False  # nothing more is added

    # ---- the call's audio, as it happens ---------------------------------------------------

    def caller_frame(self, now_s: float, timestamp_ms: int, payload: bytes) -> None:
        """An inbound frame arrived at ``now_s`` with Twilio's media ``timestamp_ms``."""
        if self.ended:
            return
        caller = self._caller
        offset = self._caller_offset
        if offset is None:  # the first frame: placed when it arrived; the rest by count
            offset = self._caller_offset = self._sample_at(now_s) - timestamp_ms * _SAMPLES_PER_MS
        missing = offset + timestamp_ms * _SAMPLES_PER_MS - len(caller)
        if missing >= FRAME_SAMPLES or not caller:  # frames that never came: silence
            self._pad(caller, missing)
        self._append(caller, payload)

    def agent_audio(self, now_s: float, payload: bytes) -> None:
        """Agent audio sent at ``now_s``: it plays once what is queued before it has played."""
        if self.ended:
            return
        agent = self._agent
        self._pad(agent, self._sample_at(now_s) - len(agent))  # nothing queued: from now
        self._append(agent, payload)

    def cleared(self, now_s: float) -> None:
        """A ``clear`` at ``now_s``: the agent audio that had not played by then never will."""
        if self.ended:
            return
        cut = self._sample_at(now_s)
        if len(self._agent) > cut:
            del self._agent[cut:]

    def end(self, now_s: float) -> None:
        """The call is over at ``now_s``: agent audio still queued was never heard."""
        self.cleared(now_s)
        self.ended = True

    # ---- the result (after ``end``; may run in another thread) -----------------------------

    @property
    def samples(self) -> int:
        """Samples per channel: the longer side, the other padded with silence."""
        return max(len(self._caller), len(self._agent))

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE_HZ

    def stereo_pcm(self) -> bytes:
        """16-bit little-endian PCM, interleaved: the caller left, the agent right."""
        frames = np.zeros((self.samples, 2), dtype="<i2")
        for channel, ulaw in enumerate((self._caller, self._agent)):
            frames[: len(ulaw), channel] = decode_array(bytes(ulaw))
        return frames.tobytes()

    # ---- helpers ----------------------------------------------------------------------------

    def _sample_at(self, now_s: float) -> int:
        return max(0, round((now_s - self._origin_s) * SAMPLE_RATE_HZ))

    def _pad(self, channel: bytearray, samples: int) -> None:
        """Silence up to ``samples`` long (none when not positive), within the cap."""
        room = self._max_samples - len(channel)
        if samples > room:
            self.truncated = True
            samples = room
        while samples > 0:  # a second at a time, copied from the view: no temporary bytes
            step = min(samples, len(_SILENCE))
            channel += _SILENCE[:step]
            samples -= step

    def _append(self, channel: bytearray, audio: bytes) -> None:
        room = self._max_samples - len(channel)
        if len(audio) > room:
            self.truncated = True
            audio = audio[: max(room, 0)]
        channel += audio
