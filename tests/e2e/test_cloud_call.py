"""A whole booking call with the cloud adapters switched on by config, each vendor on its
emulator with the `cloud` latency profile: Deepgram for speech-to-text, an OpenAI-compatible model
for the flow, ElevenLabs for speech."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.emulators.elevenlabs import LATENCY_PROFILES, ElevenLabsEmulator, Fault
from slotline.providers.emulators.openai import LATENCY_PROFILES as LLM_LATENCY
from slotline.providers.emulators.openai import OpenAIEmulator
from tests.e2e.conftest import Server, call_tasks, running_server

SECRETS = {"DEEPGRAM_API_KEY": "dg-key", "ELEVENLABS_API_KEY": "xi-key",
           "OPENAI_API_KEY": "sk-test"}


def _cloud_env(deepgram: DeepgramEmulator, eleven: ElevenLabsEmulator) -> dict[str, str]:
    """Settings that switch the server to both cloud adapters, pointed at the emulators."""
    return {
        "SLOTLINE_STT__PROVIDER": "deepgram",
        "SLOTLINE_STT__BASE_URL": deepgram.url,
        "SLOTLINE_STT__OPTIONS__KEYTERMS": "true",  # each question's vocabulary (opt-in)
        "SLOTLINE_TTS__PROVIDER": "elevenlabs",
        "SLOTLINE_TTS__BASE_URL": eleven.base_url,
        "SLOTLINE_TTS__VOICE_ID": "voice-ava",
    }


@contextlib.asynccontextmanager
async def cloud_call_server() -> AsyncIterator[
    tuple[web.AppRunner, Server, ElevenLabsEmulator, DeepgramEmulator]
]:
    """A server on the Deepgram, OpenAI and ElevenLabs emulators (cloud latency profile)."""
    async with DeepgramEmulator.cloud(api_key="dg-key") as deepgram, ElevenLabsEmulator(
        api_key="xi-key", latency=LATENCY_PROFILES["cloud"]
    ) as eleven, OpenAIEmulator(api_key="sk-test", latency=LLM_LATENCY["cloud"]) as llm:
        env = {**_cloud_env(deepgram, eleven), "SLOTLINE_LLM__PROVIDER": "openai",
               "SLOTLINE_LLM__BASE_URL": llm.base_url, "SLOTLINE_LLM__MODEL": "gpt-4o-mini"}
        runner, server = await running_server(env=env, secret_env=SECRETS)
        yield runner, server, eleven, deepgram


async def test_booking_call_on_deepgram_openai_and_elevenlabs_emulators() -> None:
    async with cloud_call_server() as (runner, server, eleven, deepgram):
        try:
            report = await run_caller(server.media_url, [caller_wav(u.stem) for u in DEMO_SCRIPT])
            record = server.deps.call_log.get(report.call_sid)
            assert record is not None
            assert report.errors == () and record.errors == []
            assert report.closed_by == "server" and record.node == "goodbye"
            assert len(record.bookings) == 1
            assert record.variables["user_name"] == "John Smith"
            # the model was configured: its use is in the call log, every turn counted
            assert record.llm["caller_turns"] == len(DEMO_SCRIPT)
            assert record.llm["turns_without_llm"] == len(DEMO_SCRIPT)
            # the agent's audio came from the ElevenLabs emulator, one context per utterance
            assert eleven.counters.contexts_opened >= len(DEMO_SCRIPT)
            # the name question loaded the names into Deepgram's keyterms, the next question
            # (the e-mail's words are everyday ones) cleared them; none was refused
            assert deepgram.stats.configures >= 2
            assert not deepgram.stats.configure_failures
            answered = [t.turn_latency_ms for t in report.turns]
            assert all(latency is not None for latency in answered)
        finally:
            await runner.cleanup()
        # every answer was read by the rules extractors: no turn waited on the model (a request
        # started early, on words the caller then finished, is dropped unseen)
        flow_turns = server.deps.metrics.flow_turns.values
        assert flow_turns["skipped"] == len(DEMO_SCRIPT) and flow_turns["used"] == 0
    assert call_tasks() == []


async def test_the_model_starts_on_the_words_of_the_pause_before_the_turn_ends() -> None:
    """An answer the rules cannot read ("my calendar stopped syncing", at the name question)
    goes to the model; its request starts on the recogniser's early finish at the pause, and
    the reply uses it because the turn's final words are the same."""
    async with cloud_call_server() as (runner, server, _, _):
        try:
            report = await run_caller(server.media_url,
                                      [caller_wav("issue_sync"), caller_wav("name_john")])
            record = server.deps.call_log.get(report.call_sid)
        finally:
            await runner.cleanup()
    assert record is not None and report.errors == () and record.errors == []
    assert record.variables["user_name"] == "John Smith"
    assert record.llm["free_answers"] == 1  # the sync question, answered by the model
    assert record.llm["early_used"] == 1 and record.llm["early_started"] >= 1
    assert call_tasks() == []


async def test_a_failing_cloud_voice_hands_over_to_the_offline_one() -> None:
    async with DeepgramEmulator(api_key="dg-key") as deepgram, ElevenLabsEmulator(
        api_key="xi-key"
    ) as eleven:
        eleven.inject(Fault.MALFORMED)  # the greeting's first audio message is garbage
        runner, server = await running_server(
            env=_cloud_env(deepgram, eleven), secret_env=SECRETS
        )
        try:
            report = await run_caller(server.media_url, [caller_wav(u.stem) for u in DEMO_SCRIPT])
            record = server.deps.call_log.get(report.call_sid)
            assert record is not None
            # the failure is on record and counted, and the call went on to its booking
            assert [e["provider"] for e in record.errors] == ["tts"]
            assert server.deps.metrics.provider_errors.values["tts"] == 1
            assert report.closed_by == "server" and len(record.bookings) == 1
            assert all(t.heard_ms > 0 for t in report.agent_turns)
            # after the failure the offline voice spoke: ElevenLabs saw only the first context
            assert eleven.counters.contexts_opened == 1
        finally:
            await runner.cleanup()
    assert call_tasks() == []
