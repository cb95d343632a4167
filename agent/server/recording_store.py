"""Call recordings on disk: one WAV per call, its row in the store, and the retention sweep.

Opt-in (``recording.enabled``). A call's session asks ``begin`` for a ``CallTimeline``
(``agent.call.recording``), which its media socket feeds both ways; ``finish`` hands the timeline to
a background task owned here, so the end of a call never waits for the disk. That task writes
``<folder>/<YYYY-MM-DD>/<call_sid>.wav`` — 8 kHz 16-bit PCM, the caller left, the agent right —
in a worker thread, under a temporary name renamed into place, so the API never serves half a
file; then it adds the row (``Store.recordings``). The file is named by the call's sid only when
the sid looks like one (it comes from the stream's ``start``, and must never become a path).

Retention runs with the server (``start``/``aclose``: an ``AsyncResource``), hourly, whether or
not recording is still enabled: rows older than ``retention_days`` go with their files, and so
does any WAV in a dated folder older than that (one whose row was never written). It deletes
nothing else. Telling the caller that the call is recorded is the flow's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import wave
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from slotline.agent.call.recording import CallTimeline
from slotline.agent.config_models import RecordingSettings
from slotline.agent.store import Store
from slotline.agent.store.recordings import StoredRecording
from slotline.audio.framing import SAMPLE_RATE_HZ

log = logging.getLogger(__name__)

# Retention is in days: an hourly sweep deletes a file at most an hour late, for one query.
SWEEP_EVERY_S = 3600.0
# At shutdown, recordings still being written get this long to reach the disk and the store.
_SAVE_WAIT_S = 10.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Recordings:
    """The server's recordings. One per process; started and closed with the app."""

    def __init__(
        self,
        settings: RecordingSettings,
        store: Store | None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._sweep_every_s = sweep_every_s
        self.folder = Path(settings.folder).absolute()
        self._saving: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- a call ----------------------------------------------------------------------------

    def begin(self) -> CallTimeline | None:
        """A new call's timeline, starting now (None: recording is off)."""
        if not self._settings.enabled or self._store is None:
            return None
        now_s = asyncio.get_running_loop().time()
        return CallTimeline(now_s, self._settings.max_duration_s)

    def finish(self, call_sid: str, timeline: CallTimeline) -> None:
        """The call is over: write its recording in the background."""
        timeline.end(asyncio.get_running_loop().time())
        if timeline.samples == 0:
            return
        if timeline.truncated:
            log.warning("recording truncated at %d s call_sid=%s",
                        self._settings.max_duration_s, call_sid)
        task = asyncio.get_running_loop().create_task(
            self._save(call_sid, timeline), name=f"recording-{call_sid[:64]}")
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, call_sid: str, timeline: CallTimeline) -> None:
        store = self._store
        assert store is not None
        created_at = self._clock()
        path = self.folder / created_at.date().isoformat() / f"{file_stem(call_sid)}.wav"
        try:
            await asyncio.to_thread(write_wav, path, timeline)
            await store.recordings.add(
                StoredRecording(call_sid, str(path), timeline.duration_s, created_at))
        except Exception:  # a full disk or a store outage loses this recording, not the server
            log.exception("saving the recording failed call_sid=%s", call_sid)
            return
        log.info("recording saved call_sid=%s duration_s=%.1f", call_sid, timeline.duration_s)

    async def path_of(self, call_sid: str) -> Path | None:
        """The call's WAV file (None: the call was not recorded, or not yet)."""
        if self._store is None:
            return None
        stored = await self._store.recordings.get(call_sid)
        return Path(stored.path) if stored is not None else None

    # ---- retention -------------------------------------------------------------------------

    async def sweep(self, now: datetime) -> int:
        """Delete the recordings made more than ``retention_days`` before ``now``: rows and
        their files, and WAVs left in older dated folders. Returns how many files went."""
        days = self._settings.retention_days
        if days <= 0 or self._store is None:
            return 0
        cutoff = now - timedelta(days=days)
        deleted = 0
        while True:
            old = await self._store.recordings.created_before(cutoff)
            if not old:
                break
            deleted += await asyncio.to_thread(_unlink, [Path(r.path) for r in old])
            await self._store.recordings.delete([r.call_sid for r in old])
        deleted += await asyncio.to_thread(_sweep_folders, self.folder, cutoff.date())
        if deleted:
            log.info("retention: deleted %d recording(s) older than %d days", deleted, days)
        return deleted

    async def _sweep_hourly(self) -> None:
        while True:
            try:
                await self.sweep(self._clock())
            except Exception:  # the store away for a moment: try again next time
                log.exception("recording retention sweep failed")
            await asyncio.sleep(self._sweep_every_s)

    async def start(self) -> None:
        if self._store is not None and self._settings.retention_days > 0:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_hourly(), name="recording-retention")

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._saving:
            await asyncio.wait(set(self._saving), timeout=_SAVE_WAIT_S)


def file_stem(call_sid: str) -> str:
    """The file name of a call's recording: its sid when it looks like one, else a digest."""
    if _SAFE_NAME.fullmatch(call_sid):
        return call_sid
    return "call-" + hashlib.sha256(call_sid.encode()).hexdigest()[:32]


def write_wav(path: Path, timeline: CallTimeline) -> None:
    """Write the stereo WAV (blocking: run it in a thread), replacing ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with wave.open(str(partial), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(timeline.stereo_pcm())
    os.replace(partial, path)


def _unlink(paths: list[Path]) -> int:
    deleted = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            deleted += 1
    return deleted


def _sweep_folders(folder: Path, before: date) -> int:
    """WAVs in ``<folder>/<YYYY-MM-DD>`` folders dated before ``before``; the emptied
    folders too. Nothing else is touched."""
    if not folder.is_dir():
        return 0
    deleted = 0
    for day in folder.iterdir():
        if not (day.is_dir() and _DATED.fullmatch(day.name)):
            continue
        try:
            if date.fromisoformat(day.name) >= before:
                continue
        except ValueError:
            continue
        deleted += _unlink(sorted([*day.glob("*.wav"), *day.glob(".*.wav.partial")]))
        with contextlib.suppress(OSError):  # not empty: something else is in there
            day.rmdir()
    return deleted
