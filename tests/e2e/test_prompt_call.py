"""A whole call through the Twilio protocol whose agent lines the model writes (`prompt:` nodes),
the model being the real OpenAI adapter and the OpenAI emulator on 127.0.0.1, slowed to a word
every 60 ms: the greeting's first clause is heard before the model has finished writing it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import caller_wav
from slotline.providers.emulators.openai import Latency, OpenAIEmulator
from tests.e2e.conftest import call_tasks, running_server

KEY = "sk-prompt-call"
GREETING = ("Hi, thanks for calling the clinic. This is Ava, and I can book a visit for you "
            "in under a minute, any day of the week.")
FLOW = {
    "name": "prompted", "agent_name": "Ava", "timezone": "America/New_York", "start": "greet",
    "nodes": {
        "greet": {"type": "greeting", "prompt": "Greet the caller and offer to book a visit.",
                  "say": GREETING, "next": "ask_name"},
        "ask_name": {"type": "conversation", "prompt": "Ask for the caller's name.",
                     "say": "May I have your name?", "collect": "user_name",
                     "extractor": "name", "next": "bye"},
        "bye": {"type": "end_call", "prompt": "Thank the caller by name; say goodbye.",
                "say": "Thank you, {user_name}. Goodbye!"},
    },
}


async def test_a_prompt_nodes_line_is_heard_while_the_model_still_writes_it(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "prompted.yaml"
    flow.write_text(yaml.safe_dump(FLOW))
    # the greeting is 24 words: ~1.4 s of writing, the first clause after the 1st word
    latency = Latency(first_token_delay_ms=100.0, token_interval_ms=60.0)
    async with OpenAIEmulator(api_key=KEY, latency=latency) as model:
        env = {"SLOTLINE_FLOW": str(flow), "SLOTLINE_LLM__PROVIDER": "openai",
               "SLOTLINE_LLM__BASE_URL": model.base_url, "SLOTLINE_LLM__MODEL": "emulated"}
        runner, server = await running_server(env=env, secret_env={"OPENAI_API_KEY": KEY})
        written: list[float] = []

        async def greeting_written() -> None:
            await model.wait_until(lambda stats: stats.streams_completed >= 1, timeout_s=60)
            written.append(time.monotonic())

        watch = asyncio.create_task(greeting_written())
        try:
            report = await run_caller(server.media_url, [caller_wav("name_john")])
            record = server.deps.call_log.get(report.call_sid)
        finally:
            await runner.cleanup()
            await watch
        assert record is not None and report.errors == () and record.errors == []
        assert report.first_agent_audio_at_s is not None
        assert report.first_agent_audio_at_s < written[0]  # heard before it was all written
        agent = [t.text for t in record.turns if t.role == "agent"]
        assert agent[:4] == ["Hi,", "thanks for calling the clinic.",
                             "This is Ava, and I can book a visit for you in under a minute,",
                             "any day of the week."]
        assert agent[-3:] == ["Thank you,", "John Smith.", "Goodbye!"]
        assert record.node == "bye" and report.closed_by == "server"
        assert record.llm["lines"] == 3 and record.llm["failures"] == 0
    assert call_tasks() == []
