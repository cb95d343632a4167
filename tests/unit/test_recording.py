"""Call recordings: the timeline assembler (sans-I/O), the WAV it becomes, and retention."""

from __future__ import annotations

import asyncio
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from slotline.agent.call.recording import CallTimeline
from slotline.agent.config_models import RecordingSettings
from slotline.agent.server.recording_store import Recordings, file_stem, write_wav
from slotline.agent.store import open_store
from slotline.agent.store.recordings import StoredRecording
from slotline.audio.mulaw import decode_array

T0 = 1000.0  # the server clock (loop.time()) when the stream started
FRAME = 160  # samples in a 20 ms frame
SILENT = 0xFF


def frame(value: int) -> bytes:
    return bytes([value]) * FRAME


def channels(timeline: CallTimeline) -> tuple[bytes, bytes]:
    """The two channels back as mu-law-like byte codes (decoded, so as the WAV holds them)."""
    pcm = np.frombuffer(timeline.stereo_pcm(), dtype="<i2").reshape(-1, 2)
    table = {int(v): code for code, v in enumerate(decode_array(bytes(range(256))))}
    table[0] = SILENT  # 0x7F and 0xFF both decode to 0
    return (bytes(table[int(v)] for v in pcm[:, 0]), bytes(table[int(v)] for v in pcm[:, 1]))


# ---- the caller's channel ----------------------------------------------------------------------


def test_caller_frames_are_placed_by_count_from_the_first_frames_arrival() -> None:
    timeline = CallTimeline(T0, max_duration_s=60)
    timeline.caller_frame(T0 + 0.100, 20, frame(1))  # the first frame came 100 ms in
    # a stall: the next three arrive late and together — counting puts them back in place
    for n, value in enumerate((2, 3, 4), start=2):
        timeline.caller_frame(T0 + 0.300, 20 * n, frame(value))
    timeline.end(T0 + 0.400)
    left, right = channels(timeline)
    assert left == bytes([SILENT]) * 800 + frame(1) + frame(2) + frame(3) + frame(4)
    assert right == bytes([SILENT]) * len(left)  # the agent said nothing
    assert timeline.duration_s == 0.18


def test_frames_that_never_came_leave_silence_where_they_were() -> None:
    timeline = CallTimeline(T0, max_duration_s=60)
    timeline.caller_frame(T0, 0, frame(1))
    timeline.caller_frame(T0 + 0.02, 20, frame(2))
    timeline.caller_frame(T0 + 0.1, 100, frame(3))  # 40, 60 and 80 ms were lost
    timeline.caller_frame(T0 + 0.12, 121, frame(4))  # 1 ms of timestamp jitter: no gap
    timeline.end(T0 + 0.14)
    left, _ = channels(timeline)
    assert left == frame(1) + frame(2) + frame(SILENT) * 3 + frame(3) + frame(4)


# ---- the agent's channel -----------------------------------------------------------------------


def test_agent_audio_plays_back_to_back_after_what_is_queued() -> None:
    timeline = CallTimeline(T0, max_duration_s=60)
    # 300 ms sent at once at 50 ms: it plays 50..350 ms; a piece sent at 100 ms queues behind
    timeline.agent_audio(T0 + 0.05, bytes([1]) * 2400)
    timeline.agent_audio(T0 + 0.10, bytes([2]) * 800)
    # idle from 450 ms: a piece sent at 600 ms plays from 600 ms, after silence
    timeline.agent_audio(T0 + 0.60, bytes([3]) * 800)
    timeline.end(T0 + 2.0)
    _, right = channels(timeline)
    assert right == (bytes([SILENT]) * 400 + bytes([1]) * 2400 + bytes([2]) * 800
                     + bytes([SILENT]) * 1200 + bytes([3]) * 800)


def test_a_clear_cuts_what_had_not_played_and_later_audio_starts_afresh() -> None:
    timeline = CallTimeline(T0, max_duration_s=60)
    timeline.agent_audio(T0, bytes([1]) * 8000)  # one second queued, playing from 0
    timeline.cleared(T0 + 0.25)  # the caller heard 250 ms of it
    timeline.agent_audio(T0 + 0.5, bytes([2]) * 800)
    timeline.end(T0 + 1.0)
    _, right = channels(timeline)
    assert right == bytes([1]) * 2000 + bytes([SILENT]) * 2000 + bytes([2]) * 800
    # a clear with nothing queued cuts nothing
    timeline = CallTimeline(T0, max_duration_s=60)
    timeline.agent_audio(T0, bytes([1]) * 800)
    timeline.cleared(T0 + 0.5)
    timeline.end(T0 + 1.0)
    assert channels(timeline)[1] == bytes([1]) * 800


def test_the_end_of_the_call_cuts_audio_still_queued_and_freezes_the_timeline() -> None:
    timeline = CallTimeline(T0, max_duration_s=60)
    timeline.caller_frame(T0, 0, frame(7))
    timeline.agent_audio(T0, bytes([1]) * 8000)
    timeline.end(T0 + 0.1)
    timeline.caller_frame(T0 + 0.02, 20, frame(8))  # after the end: ignored
    timeline.agent_audio(T0 + 0.2, bytes([2]) * 800)
    left, right = channels(timeline)
    assert right == bytes([1]) * 800
    assert left == frame(7) + bytes([SILENT]) * 640


def test_the_cap_bounds_both_channels_and_says_so() -> None:
    timeline = CallTimeline(T0, max_duration_s=1)
    for n in range(60):  # 1.2 s of frames
        timeline.caller_frame(T0 + n * 0.02, 20 * n, frame(5))
    timeline.agent_audio(T0 + 0.9, bytes([1]) * 8000)  # would end at 1.9 s
    assert timeline.truncated
    timeline.end(T0 + 5.0)
    left, right = channels(timeline)
    assert len(left) == len(right) == 8000 and timeline.duration_s == 1.0
    assert left == frame(5) * 50
    assert right == bytes([SILENT]) * 7200 + bytes([1]) * 800
    gap = CallTimeline(T0, max_duration_s=1)
    gap.caller_frame(T0, 0, frame(5))
    gap.caller_frame(T0 + 3600, 3_600_000, frame(6))  # an hour's gap is not an hour of silence
    assert gap.truncated and gap.samples == 8000


# ---- the file ------------------------------------------------------------------------------------


def test_the_wav_is_8khz_16_bit_stereo_caller_left_agent_right(tmp_path: Path) -> None:
    timeline = CallTimeline(T0, max_duration_s=60)
    caller = bytes(range(0, 160))
    agent = bytes(range(96, 256))
    timeline.caller_frame(T0, 0, caller)
    timeline.agent_audio(T0, agent)
    timeline.end(T0 + 0.02)
    path = tmp_path / "2026-01-02" / "CA1.wav"
    write_wav(path, timeline)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(pcm[:, 0], decode_array(caller))
    assert np.array_equal(pcm[:, 1], decode_array(agent))
    assert [p.name for p in path.parent.iterdir()] == ["CA1.wav"]  # no partial file left


def test_a_call_sid_becomes_a_file_name_only_when_it_looks_like_one() -> None:
    assert file_stem("CA" + "0f" * 16) == "CA" + "0f" * 16
    for hostile in ("../../etc/passwd", "a/b", "", "x" * 65, "CA1.wav"):
        stem = file_stem(hostile)
        assert stem.startswith("call-") and "/" not in stem and "." not in stem
    assert file_stem("../x") != file_stem("../y")


# ---- retention ---------------------------------------------------------------------------------


def wav_at(folder: Path, day: str, name: str) -> Path:
    path = folder / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


async def test_retention_deletes_old_recordings_and_nothing_else(
    store_url: str, tmp_path: Path
) -> None:
    now = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    folder = tmp_path / "recordings"
    settings = RecordingSettings(enabled=True, folder=str(folder), retention_days=30)
    async with open_store(store_url) as store:
        recordings = Recordings(settings, store, clock=lambda: now)
        kept: list[Path] = []
        gone: list[Path] = []
        for sid, age_days in (("CAold", 31), ("CAedge", 30.01), ("CAnew", 29.9), ("CAtoday", 0)):
            made = now - timedelta(days=age_days)
            path = wav_at(folder, made.date().isoformat(), f"{sid}.wav")
            await store.recordings.add(StoredRecording(sid, str(path), 12.5, made))
            (gone if age_days > 30 else kept).append(path)
        orphan = wav_at(folder, "2026-02-01", "CAorphan.wav")  # its row was never written
        gone.append(orphan)
        recent_orphan = wav_at(folder, "2026-03-30", "CArecent.wav")
        kept.append(recent_orphan)
        not_ours = [wav_at(folder, "2026-01-01", "notes.txt"), wav_at(folder, "old", "x.wav")]
        assert await recordings.sweep(now) == len(gone)
        assert not any(p.exists() for p in gone)
        assert all(p.exists() for p in kept + not_ours)
        assert not (folder / "2026-02-01").exists()  # emptied, so removed
        assert await store.recordings.get("CAold") is None
        assert await store.recordings.get("CAedge") is None
        still = await store.recordings.get("CAnew")
        assert still is not None and still.duration_s == 12.5 and still.path == str(kept[0])
        assert await recordings.path_of("CAtoday") == kept[1]
        assert await recordings.sweep(now) == 0  # nothing left to delete
        forever = Recordings(settings.model_copy(update={"retention_days": 0}), store,
                             clock=lambda: now)
        assert await forever.sweep(now + timedelta(days=3650)) == 0
        assert all(p.exists() for p in kept)


async def test_a_finished_call_is_written_and_found_by_its_sid(tmp_path: Path) -> None:
    now = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    settings = RecordingSettings(enabled=True, folder=str(tmp_path), retention_days=30)
    async with open_store(f"sqlite:///{tmp_path}/store.db") as store:
        recordings = Recordings(settings, store, clock=lambda: now)
        await recordings.start()
        timeline = recordings.begin()
        assert timeline is not None
        timeline.caller_frame(asyncio.get_running_loop().time(), 0, frame(3))
        recordings.finish("CA" + "1" * 32, timeline)
        await recordings.aclose()  # waits for the write
        path = await recordings.path_of("CA" + "1" * 32)
        assert path == tmp_path / "2026-03-31" / ("CA" + "1" * 32 + ".wav")
        with wave.open(str(path), "rb") as wav:
            assert wav.getnchannels() == 2 and wav.getnframes() >= FRAME
        off = Recordings(settings.model_copy(update={"enabled": False}), store)
        assert off.begin() is None
        assert await off.path_of("CA" + "1" * 32) == path  # served still, while kept
