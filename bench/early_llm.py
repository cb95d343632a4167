"""What starting the model early saves: the caller's wait on a turn the model answers, with the
request started on the pause's settled words (``turn.early_llm_ms``) and without (``0``).

Each call is the demo flow on the cloud emulators (Deepgram, an OpenAI-compatible model with
~300 ms to first token, ElevenLabs), through the Twilio protocol in real time. The caller answers
the name question with "my calendar stopped syncing", which the rules cannot read, so the model
answers it (a free answer, then the question again); then gives the name and hangs up. Reported:
that turn's latency from the caller's side, the server's ``llm_ttft_ms`` for it (time from the
turn's final transcript to the model's first sentence), and how many early requests were used.

    .venv/bin/python -m bench.early_llm [--calls 10] [--early-ms 100]

Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile

from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import caller_wav, start_server
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.emulators.elevenlabs import LATENCY_PROFILES, ElevenLabsEmulator
from slotline.providers.emulators.openai import LATENCY_PROFILES as LLM_LATENCY
from slotline.providers.emulators.openai import OpenAIEmulator

SCRIPT = ("issue_sync", "name_john")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(early_ms: int, calls: int) -> tuple[list[float], list[float]]:
    """(caller-side turn latency, server llm_ttft_ms) of the model's turn."""
    scratch = tempfile.mkdtemp(prefix="slotline-bench-")
    async with contextlib.AsyncExitStack() as stack:
        deepgram = await stack.enter_async_context(DeepgramEmulator.cloud(api_key="dg-key"))
        eleven = await stack.enter_async_context(
            ElevenLabsEmulator(api_key="xi-key", latency=LATENCY_PROFILES["cloud"]))
        llm = await stack.enter_async_context(
            OpenAIEmulator(api_key="sk-bench", latency=LLM_LATENCY["cloud"]))
        env = {
            **os.environ,
            "SLOTLINE_STORE__URL": f"sqlite:///{scratch}/bench.db",
            "SLOTLINE_STT__PROVIDER": "deepgram", "SLOTLINE_STT__BASE_URL": deepgram.url,
            "SLOTLINE_TTS__PROVIDER": "elevenlabs", "SLOTLINE_TTS__BASE_URL": eleven.base_url,
            "SLOTLINE_TTS__VOICE_ID": "voice-ava",
            "SLOTLINE_LLM__PROVIDER": "openai", "SLOTLINE_LLM__BASE_URL": llm.base_url,
            "SLOTLINE_TURN__EARLY_LLM_MS": str(early_ms),
            "DEEPGRAM_API_KEY": "dg-key", "ELEVENLABS_API_KEY": "xi-key",
            "OPENAI_API_KEY": "sk-bench",
        }
        settings, secrets = load_settings(None, env), load_secrets(env)
        deps = await build_deps(settings, secrets)
        runner, url = await start_server(settings, secrets, deps)
        stack.push_async_callback(runner.cleanup)
        media_url = url.replace("http://", "ws://") + "/twilio/media"
        caller_side: list[float] = []
        ttft: list[float] = []
        for _ in range(calls):
            report = await run_caller(media_url, [caller_wav(stem) for stem in SCRIPT])
            record = deps.call_log.get(report.call_sid)
            assert record is not None and not report.errors, report.errors
            first = report.turns[0].turn_latency_ms
            answers = [t for t in record.turns if t.role == "agent" and t.latency is not None]
            if first is not None and answers:
                caller_side.append(first)
                assert answers[0].latency is not None
                ttft.append(answers[0].latency.llm_ttft_ms)
        return caller_side, ttft


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<40} (none)"
    return (f"{name:<40} n={len(values):<3} p50 {statistics.median(values):6.0f}"
            f"   p95 {_pct(values, 0.95):6.0f}")


async def main(calls: int, early_ms: int) -> None:
    for value in (0, early_ms):
        caller_side, ttft = await measure(value, calls)
        print(f"early_llm_ms={value}")
        print(_line("  turn_latency_ms (caller side)", caller_side))
        print(_line("  llm_ttft_ms (server)", ttft))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--early-ms", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.early_ms))
