"""Turn-taking numbers: turn latency per patience profile, barge-in, false interruptions,
fillers and cached prompt audio, with the simulated caller against a real server.

Each call is the demo booking conversation through the Twilio protocol in real time. Its five
answers are heard with the profile the question asks for — name, day and time "normal", the
booking's "Shall I book it?" "short", the e-mail question "long" — through ``Profiled``, which
does what the flow will do once ``agent/flow/steps.py`` passes the extractor kind to
``Listen.expecting`` (``--no-profiles``: every turn "normal", as before) and lists the flow's
fixed sentences for the prompt cache (what the flow's responder will do through
``static_prompts``). Then the barge-in
calls: "wait sorry hold on" over the greeting (a real interruption), and a burst of line noise
over it (a false one: the agent must resume).

    .venv/bin/python bench/turn_taking.py [--calls 3] [--stack offline|cloud] [--no-profiles]
                                          [--no-cache]

``--stack cloud`` puts Deepgram and ElevenLabs on their emulators with realistic delays
(Deepgram results ~250 ms behind the audio, its speech_final can end turns; ElevenLabs first
byte ~150 ms), so cached prompt audio and STT finality show what they save. Not a test: the
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from slotline.agent.call.calllog import CallRecord
from slotline.agent.call.prompt_cache import PromptCache, prompts_of
from slotline.agent.call.responder import Action, CallEvent, Listen, Responder
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.flow.model import BookingNode, ConversationNode, Flow, RescheduleNode
from slotline.agent.flow.validate import load_flow
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import CallerReport, Speak, run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, start_server
from slotline.audio.mulaw import encode_array
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.emulators.elevenlabs import LATENCY_PROFILES, ElevenLabsEmulator
from slotline.providers.telephony.twilio_media import Start

FLOWS = Path(__file__).resolve().parents[1] / "config" / "flows"


class Profiled:
    """A call's flow responder as the flow will drive turn-taking once the pending one-line
    changes land: its ``Listen``s carry the patience of the question asked (from the node's
    extractor), and it lists the flow's fixed sentences for the prompt cache."""

    def __init__(self, inner: Responder, flow: Flow, *, profiles: bool) -> None:
        self._inner = inner
        self._flow = flow
        self._profiles = profiles

    @property
    def flow(self) -> str:
        return self._inner.flow

    @property
    def node(self) -> str:
        return self._inner.node

    @property
    def variables(self) -> Mapping[str, str]:
        return self._inner.variables

    def static_prompts(self) -> tuple[str, ...]:
        return prompts_of(self._inner)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def handle(self, event: CallEvent) -> AsyncIterator[Action]:
        async for action in self._inner.handle(event):
            if isinstance(action, Listen) and self._profiles:
                node = self._flow.nodes.get(self._inner.node)
                if isinstance(node, ConversationNode):
                    action = action.expecting(node.extractor)
                elif isinstance(node, BookingNode | RescheduleNode) and node.confirm:
                    action = action.expecting("yes_no")  # "Shall I book it?"
            yield action


def _noise(ms: int) -> bytes:
    samples = np.random.default_rng(7).normal(0, 6000, ms * 8)
    return encode_array(samples.clip(-32000, 32000).astype(np.int16))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<44} (none)"
    return (f"{name:<44} n={len(values):<3} p50 {statistics.median(values):6.0f}"
            f"   p95 {_pct(values, 0.95):6.0f}")


@dataclass
class Numbers:
    latency_by_profile: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    endpoint_by_profile: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    overhead: list[float] = field(default_factory=list)
    ended_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bargein_ms: list[float] = field(default_factory=list)
    agent_turns: int = 0
    cached_turns: int = 0
    fillers: int = 0
    resumed: int = 0
    false_calls: int = 0

    def add_conversation(self, report: CallerReport, record: CallRecord) -> None:
        caller_turns = [t for t in record.turns if t.role == "caller"]
        answers = [t for t in record.turns if t.role == "agent" and t.latency is not None]
        for heard, said, answer in zip(report.turns, caller_turns, answers, strict=False):
            profile = said.patience or "normal"
            if heard.turn_latency_ms is not None:
                self.latency_by_profile[profile].append(heard.turn_latency_ms)
            assert answer.latency is not None
            self.endpoint_by_profile[profile].append(answer.latency.endpoint_ms)
            self.overhead.append(answer.latency.server_overhead_ms)
            self.ended_by[said.ended_by or "?"] += 1
        self._agent_turns(record)

    def _agent_turns(self, record: CallRecord) -> None:
        agent = [t for t in record.turns if t.role == "agent"]
        self.agent_turns += len(agent)
        self.cached_turns += sum(t.cached_audio for t in agent)
        self.fillers += sum(t.filler for t in agent)
        self.resumed += sum(t.resumed for t in agent)


async def _stack(kind: str, stack: contextlib.AsyncExitStack) -> dict[str, str]:
    if kind == "offline":
        return {}
    deepgram = await stack.enter_async_context(DeepgramEmulator.cloud(api_key="dg-key"))
    eleven = await stack.enter_async_context(
        ElevenLabsEmulator(api_key="xi-key", latency=LATENCY_PROFILES["cloud"]))
    return {
        "SLOTLINE_STT__PROVIDER": "deepgram", "SLOTLINE_STT__BASE_URL": deepgram.url,
        "SLOTLINE_TTS__PROVIDER": "elevenlabs", "SLOTLINE_TTS__BASE_URL": eleven.base_url,
        "SLOTLINE_TTS__VOICE_ID": "voice-ava",
        "DEEPGRAM_API_KEY": "dg-key", "ELEVENLABS_API_KEY": "xi-key",
    }


async def main(calls: int, stack_kind: str, profiles: bool, cache: bool) -> None:
    scratch = tempfile.mkdtemp(prefix="slotline-bench-")
    async with contextlib.AsyncExitStack() as stack:
        vendor_env = await _stack(stack_kind, stack)
        env = {**os.environ, "SLOTLINE_STORE__URL": f"sqlite:///{scratch}/bench.db", **vendor_env}
        settings = load_settings(None, env)
        secrets = load_secrets(env)
        deps = await build_deps(settings, secrets)
        make, flow = deps.make_responder, load_flow(FLOWS / f"{settings.flow}.yaml")

        def profiled(start: Start) -> Responder:
            inner = make(start)
            return Profiled(inner, flow, profiles=profiles)  # the caller picks no other flow

        deps = replace(deps, make_responder=profiled)
        if not cache:
            deps = replace(deps, prompt_cache=PromptCache(max_bytes=0))  # stores nothing
        runner, url = await start_server(settings, secrets, deps)
        stack.push_async_callback(runner.cleanup)
        media_url = url.replace("http://", "ws://") + "/twilio/media"
        numbers = Numbers()
        conversation = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        for _ in range(calls):  # one at a time: every call asks for the same 3 pm slot
            report = await run_caller(media_url, conversation)
            record = deps.call_log.get(report.call_sid)
            assert record is not None
            numbers.add_conversation(report, record)
        interrupt = caller_wav("interrupt").audio
        for audio in (interrupt, _noise(400)):
            for _ in range(calls):
                script = [Speak(audio, interrupt_after_ms=1500)]
                report = await run_caller(media_url, script, reply_timeout_s=8)
                numbers.bargein_ms += [t.bargein_ms for t in report.turns if t.bargein_ms]
                record = deps.call_log.get(report.call_sid)
                assert record is not None
                numbers._agent_turns(record)
                numbers.false_calls += audio is not interrupt
    print(f"stack={stack_kind} profiles={'on' if profiles else 'off'} "
          f"cache={'on' if cache else 'off'} calls={calls} "
          f"end_silence_ms={settings.turn.end_silence_ms}")
    _print(numbers)


def _print(numbers: Numbers) -> None:
    for profile in ("short", "normal", "long"):
        print(_line(f"turn_latency_ms caller side [{profile}]",
                    numbers.latency_by_profile.get(profile, [])))
        print(_line(f"endpoint_ms server [{profile}]",
                    numbers.endpoint_by_profile.get(profile, [])))
    print(_line("server_overhead_ms", numbers.overhead))
    print(_line("bargein_ms caller side (words and noise)", numbers.bargein_ms))
    print(f"{'turns ended by':<44} {dict(numbers.ended_by)}")
    print(f"{'agent turns using cached audio':<44} {numbers.cached_turns} of "
          f"{numbers.agent_turns}")
    print(f"{'fillers said':<44} {numbers.fillers}")
    print(f"{'false interruptions resumed':<44} {numbers.resumed} (noise calls: "
          f"{numbers.false_calls})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--stack", choices=("offline", "cloud"), default="offline")
    parser.add_argument("--no-profiles", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="prompt audio cache off")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.stack, not args.no_profiles, not args.no_cache))
