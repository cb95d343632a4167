"""What the offline recogniser costs, where, and how well it hears the committed caller audio.

1. Event-loop cost of ``LocalSttStream.push_audio`` per 20 ms frame (what every call pays).
2. For comparison, pocketsphinx decoding in this process, frame by frame: ``process_raw`` per
   frame and ``end_utt`` per turn, grammar and domain LM, after the 8 -> 16 kHz resample.
3. Event-loop stalls while an utterance is decoded in a thread (pocketsphinx keeps the GIL)
   versus in the worker process.
4. ``finalize`` latency (= stt_final_ms) with and without the speculative decode.
5. WER per mode, and 8 kHz native decoding against upsampling to 16 kHz (linear or sinc).

    cd /work/main && /work/venv/bin/python -m bench.stt_local_cost
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pocketsphinx
from pocketsphinx.lm import ArpaBoLM

from slotline.audio.resample import resample
from slotline.providers.base import SpeechHints
from slotline.providers.stt._domain_corpus import domain_sentences
from slotline.providers.stt._sphinx_worker import normalize_phrase, read_dictionary, upsample_linear
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_stt_local import FREE_TEXT, QUESTIONS, caller_frames, word_errors
from tests.unit.test_stt_local import TEXTS as ALL_TEXTS

END_SILENCE_MS = 600  # the turn detector's default end_silence_ms
# Free-text answers (a company name, a problem) have no hints: scored elsewhere, not here.
TEXTS = {stem: text for stem, text in ALL_TEXTS.items() if stem not in FREE_TEXT}
MODEL_DIR = Path(pocketsphinx.get_model_path()) / "en-us"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def _hints_of(stem: str) -> tuple[str, ...]:
    return next(phrases for stems, phrases in QUESTIONS.values() if stem in stems)


def _utterance_pcm(stem: str) -> bytes:
    return b"".join(chunk.pcm16 for chunk in caller_frames(stem))


def _decoder(tmp: Path, **config: Any) -> Any:
    """An in-process decoder like the worker's: domain words only, domain LM as default."""
    corpus = "\n".join(domain_sentences()) + "\n"
    pronunciations = read_dictionary(MODEL_DIR / "cmudict-en-us.dict")
    words = {w for line in corpus.splitlines() for w in line.split()} | {
        w for stem in TEXTS for w in normalize_phrase(" ".join(_hints_of(stem)))
    }
    with (tmp / "bench.dict").open("w") as out:
        for word in sorted(words & pronunciations.keys()):
            for i, phones in enumerate(pronunciations[word]):
                out.write(f"{word}({i + 1}) {phones}\n" if i else f"{word} {phones}\n")
    builder = ArpaBoLM(text=corpus, add_start=True)
    builder.compute()
    with (tmp / "domain.arpa").open("w") as out:
        builder.write(out)
    settings = {"hmm": str(MODEL_DIR / "en-us"), "dict": str(tmp / "bench.dict"),
                "lm": str(tmp / "domain.arpa"), "loglevel": "FATAL"}
    settings.update(config)
    decoder = pocketsphinx.Decoder(**settings)
    for question, (_, phrases) in QUESTIONS.items():
        sentences = " | ".join(" ".join(normalize_phrase(p)) for p in phrases)
        decoder.add_jsgf_string(question, f"#JSGF V1.0;\ngrammar g;\npublic <u> = {sentences};\n")
    return decoder


async def bench_push_audio(stt: LocalSpeechToText) -> None:
    """Every frame of every recording; the frame 250 ms into each trailing silence also
    copies the turn and writes it to the worker's pipe (the speculative decode)."""
    turns = [caller_frames(stem) for stem in TEXTS] * 3
    cost_us: list[float] = []
    speculative_us: list[float] = []
    for chunks in turns:
        stream = stt.open_stream(call_sid="CAbench")
        for chunk in chunks:
            sent = stt.decodes_requested
            started = time.perf_counter_ns()
            stream.push_audio(chunk)
            elapsed_us = (time.perf_counter_ns() - started) / 1000
            (speculative_us if stt.decodes_requested > sent else cost_us).append(elapsed_us)
        await stream.finalize()
        await stream.aclose()
    print(f"push_audio on the loop: p50 {statistics.median(cost_us):.2f} µs, "
          f"p99 {_pct(cost_us, 0.99):.2f} µs, max {max(cost_us):.1f} µs over "
          f"{len(cost_us)} frames; the {len(speculative_us)} frames that sent a speculative "
          f"decode: p50 {statistics.median(speculative_us):.0f} µs, "
          f"max {max(speculative_us):.0f} µs")


def bench_inline_decoding(decoder: Any) -> None:
    print("in-process streaming decode (what the worker process keeps off the loop):")
    for mode in ("grammar", "domain LM"):
        per_frame: list[float] = []
        end_utt: list[float] = []
        resample_us: list[float] = []
        for stem in TEXTS:
            decoder.activate_search(next(q for q, (s, _) in QUESTIONS.items() if stem in s)
                                    if mode == "grammar" else None)
            decoder.start_utt()
            for chunk in caller_frames(stem):
                t0 = time.perf_counter_ns()
                wide = upsample_linear(np.frombuffer(chunk.pcm16, dtype="<i2"))
                t1 = time.perf_counter_ns()
                decoder.process_raw(wide.tobytes())
                per_frame.append((time.perf_counter_ns() - t1) / 1000)
                resample_us.append((t1 - t0) / 1000)
            t0 = time.perf_counter_ns()
            decoder.end_utt()
            end_utt.append((time.perf_counter_ns() - t0) / 1e6)
        print(f"  {mode:9}: process_raw per frame p50 {statistics.median(per_frame):.0f} µs, "
              f"p99 {_pct(per_frame, 0.99):.0f} µs; end_utt mean {statistics.mean(end_utt):.1f} ms"
              f", max {max(end_utt):.1f} ms; upsample per frame p50 "
              f"{statistics.median(resample_us):.0f} µs")


async def _max_loop_stall_ms(work: Any) -> float:
    """Largest gap seen by a 1 ms ticker while ``work`` runs."""
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stalls.append((now - last) * 1000)
            last = now

    async with asyncio.TaskGroup() as group:
        group.create_task(ticker(), name="ticker")
        await asyncio.sleep(0.01)
        await work
        done.set()
    return max(stalls)


def _decode_whole(decoder: Any, pcm16_8k: bytes, search: str | None) -> str:
    audio = upsample_linear(np.frombuffer(pcm16_8k, dtype="<i2")).tobytes()
    decoder.activate_search(search)
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return "" if hypothesis is None else str(hypothesis.hypstr)


async def bench_loop_stalls(decoder: Any, stt: LocalSpeechToText) -> None:
    pcm = _utterance_pcm("phone")
    thread = await _max_loop_stall_ms(asyncio.to_thread(_decode_whole, decoder, pcm, None))
    process = await _max_loop_stall_ms(stt.decode(pcm, SpeechHints()))
    print(f"loop stall while decoding a {len(pcm) / 16000:.1f} s utterance: in a thread "
          f"{thread:.0f} ms, in the worker process {process:.1f} ms")


async def bench_finalize(stt: LocalSpeechToText, speculate: bool) -> None:
    """Frames pushed as fast as possible up to END_SILENCE_MS after the last voiced frame.
    With ``speculate`` the silence after the speculation point is slept, as it passes on a
    call before the turn detector calls finalize; without, finalize waits for a whole decode."""
    stream = stt.open_stream(call_sid="CAfinal")
    waits_ms: list[float] = []
    for stem in TEXTS:
        stream.set_hints(SpeechHints(phrases=_hints_of(stem)))
        for chunk in caller_frames(stem, tail_ms=END_SILENCE_MS):
            stream.push_audio(chunk)
        if speculate:
            await asyncio.sleep((END_SILENCE_MS - 250) / 1000)
        started = time.perf_counter()
        await stream.finalize()
        waits_ms.append((time.perf_counter() - started) * 1000)
    label = "speculative decode" if speculate else "decode at finalize"
    print(f"finalize, {label}: p50 {statistics.median(waits_ms):6.1f} ms, "
          f"max {max(waits_ms):6.1f} ms")
    await stream.aclose()


async def bench_wer(stt: LocalSpeechToText) -> None:
    modes = {"grammar hints": [0, 0], "no hints (domain LM)": [0, 0], "out-of-hint": [0, 0]}
    for stem, text in TEXTS.items():
        for mode, hints in (("grammar hints", SpeechHints(phrases=_hints_of(stem))),
                            ("no hints (domain LM)", SpeechHints())):
            result = await stt.decode(_utterance_pcm(stem), hints)
            modes[mode][0] += word_errors(text, result.text)
            modes[mode][1] += len(text.split())
        for stems, phrases in QUESTIONS.values():
            if stem not in stems:
                result = await stt.decode(_utterance_pcm(stem), SpeechHints(phrases=phrases))
                modes["out-of-hint"][0] += word_errors(text, result.text)
                modes["out-of-hint"][1] += len(text.split())
    for mode, (errors, words) in modes.items():
        print(f"WER {mode:22}: {errors / words:.3f} ({errors}/{words} words)")


def bench_sample_rates(tmp: Path) -> None:
    """The en-us model at 8 kHz needs its feat.params edited (it overrides upperf)."""
    narrow = tmp / "en-us-8k"
    narrow.mkdir()
    for item in (MODEL_DIR / "en-us").iterdir():
        if item.name != "feat.params":
            (narrow / item.name).symlink_to(item)
    params = (MODEL_DIR / "en-us" / "feat.params").read_text()
    (narrow / "feat.params").write_text(params.replace("-upperf 6800", "-upperf 3900"))
    general_lm = str(MODEL_DIR / "en-us.lm.bin")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("8 kHz native, domain LM", {"hmm": str(narrow), "samprate": 8000, "nfft": 256}, "none"),
        ("16 kHz sinc (audio.resample), domain LM", {}, "sinc"),
        ("16 kHz linear (chosen), domain LM", {}, "linear"),
        ("16 kHz linear, general en-us LM", {"lm": general_lm,
                                             "dict": str(MODEL_DIR / "cmudict-en-us.dict")},
         "linear"),
    ]
    for label, config, upsampler in cases:
        decoder = _decoder(tmp, **config)
        errors = words = 0
        cpu_s = audio_s = 0.0
        for stem, text in TEXTS.items():
            pcm = np.frombuffer(_utterance_pcm(stem), dtype="<i2")
            started = time.perf_counter()
            if upsampler == "sinc":
                pcm = resample(pcm, 8000, 16000)
            elif upsampler == "linear":
                pcm = upsample_linear(pcm)
            decoder.start_utt()
            decoder.process_raw(pcm.tobytes(), full_utt=True)
            decoder.end_utt()
            cpu_s += time.perf_counter() - started
            audio_s += len(pcm) / (8000 if upsampler == "none" else 16000)
            hypothesis = decoder.hyp()
            errors += word_errors(text, "" if hypothesis is None else hypothesis.hypstr)
            words += len(text.split())
        print(f"{label:40}: WER {errors / words:.3f}, {cpu_s / audio_s * 1000:.0f} ms CPU "
              "per s of audio (upsample + whole-utterance decode)")


async def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        decoder = _decoder(tmp)
        bench_inline_decoding(decoder)
        async with LocalSpeechToText() as stt:
            await bench_push_audio(stt)
            await bench_loop_stalls(decoder, stt)
            await bench_finalize(stt, speculate=False)
            await bench_finalize(stt, speculate=True)
            await bench_wer(stt)
        bench_sample_rates(tmp)


if __name__ == "__main__":
    asyncio.run(main())
