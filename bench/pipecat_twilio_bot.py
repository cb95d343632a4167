"""Pipecat's Twilio chatbot example, offline, for ``slotline bench --target`` (README: "Pipecat
under the same harness").

Not part of Slotline and not run by the tests: it imports ``pipecat`` (pipecat-ai 1.14 with the
runner, websocket, silero, deepgram, openai and elevenlabs extras), which lives in a venv of its
own, never in .venv. Pipecat's development runner serves it exactly as it serves the example
(``POST /`` answers Twilio's webhook with TwiML, the media stream is the plain ``/ws`` route);
the pipeline is the example's — transport in, Deepgram STT, the user aggregator with Silero VAD
and Pipecat's default turn strategies, an LLM, TTS, transport out, the assistant aggregator —
with the cloud vendors swapped for the ones our harness emulates, so both servers talk to the
same emulators with the same latency profile:

* Deepgram STT: the same service, ``base_url`` = our Deepgram emulator;
* the example's Google LLM -> Pipecat's OpenAI service, ``base_url`` = our OpenAI emulator;
* the example's Cartesia TTS -> Pipecat's ElevenLabs service, ``url`` = our ElevenLabs emulator.

The emulators' addresses come from the JSON line ``python -m slotline.agent.bench.vendors
PROFILE`` prints (path in ``SLOTLINE_BENCH_VENDORS``). Departures from the example, each needed
offline: no Twilio REST look-up of the caller and no automatic hang-up over Twilio's REST API
(nothing to reach; the bench's caller ends the calls), no recording to disk. Like the example,
the bot greets once the caller connects (``PIPECAT_BENCH_GREET=0``: it waits to be spoken to).

    PIPECAT_BENCH_PORT=7860 SLOTLINE_BENCH_VENDORS=vendors.json \\
        /work/pipecat-venv/bin/python bench/pipecat_twilio_bot.py -t twilio -x 127.0.0.1:7860
"""

import json
import os

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.types import RunnerArguments
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

SYSTEM = ("You are a receptionist on a phone call. Your output is spoken, so no special "
          "characters. Answer in one short sentence.")


def vendors() -> dict[str, str]:
    """The emulators' addresses and keys (the ``env`` of the vendors' JSON line)."""
    with open(os.environ["SLOTLINE_BENCH_VENDORS"], encoding="utf-8") as file:
        env: dict[str, str] = json.loads(file.readline())["env"]
    return env


async def run_bot(transport: FastAPIWebsocketTransport, runner_args: RunnerArguments) -> None:
    env = vendors()
    stt = DeepgramSTTService(api_key=env["DEEPGRAM_API_KEY"],
                             base_url=env["SLOTLINE_STT__BASE_URL"])
    llm = OpenAILLMService(api_key=env["OPENAI_API_KEY"], base_url=env["SLOTLINE_LLM__BASE_URL"],
                           model="gpt-4o-mini",
                           settings=OpenAILLMService.Settings(system_instruction=SYSTEM))
    tts = ElevenLabsTTSService(api_key=env["ELEVENLABS_API_KEY"],
                               url=env["SLOTLINE_TTS__BASE_URL"],
                               voice_id=env["SLOTLINE_TTS__VOICE_ID"])
    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()))
    pipeline = Pipeline([transport.input(), stt, user_aggregator, llm, tts, transport.output(),
                         assistant_aggregator])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000,
                              enable_metrics=True, enable_usage_metrics=True),
        idle_timeout_secs=runner_args.pipeline_idle_timeout_secs,
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: object, client: object) -> None:
        if os.environ.get("PIPECAT_BENCH_GREET", "1") != "0":
            context.add_message({"role": "developer",
                                 "content": "Please introduce yourself to the caller."})
            await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: object, client: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=runner_args.handle_sigint, force_gc=True)
    await runner.add_workers(worker)
    await runner.run()


async def bot(runner_args: RunnerArguments) -> None:
    """The runner's entry point for each call on ``/ws``."""
    _, call_data = await parse_telephony_websocket(runner_args.websocket)  # type: ignore[attr-defined]
    serializer = TwilioFrameSerializer(
        stream_sid=call_data["stream_id"], call_sid=call_data["call_id"],
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
    params = FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True,
                                    add_wav_header=False, serializer=serializer)
    transport = FastAPIWebsocketTransport(websocket=runner_args.websocket,  # type: ignore[attr-defined]
                                          params=params)
    await run_bot(transport, runner_args)


if __name__ == "__main__":
    from pipecat.runner.run import main

    main()
