"""The process's first model request imports nothing on the event loop: what the SDK and its
HTTP stack import lazily is imported by ``OpenAIChatModel.start`` (server start-up). Run in a
fresh interpreter, the only place the first import of a module can be seen."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = r"""
import asyncio, json, sys
from slotline.providers.emulators.openai import OpenAIEmulator
from slotline.providers.llm.openai import OpenAIChatModel
from slotline.providers.base import ChatMessage

async def main():
    async with OpenAIEmulator(api_key="k") as emu:
        model = OpenAIChatModel("k", base_url=emu.base_url, model="m")
        if sys.argv[1] == "started":
            await model.start()
        before = set(sys.modules)
        async for _ in model.stream((ChatMessage("user", "hello"),)):
            pass
        print(json.dumps(sorted(set(sys.modules) - before)))
        await model.aclose()

asyncio.run(main())
"""


def _imported_by_first_request(mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    imported: list[str] = json.loads(out.strip().splitlines()[-1])
    return imported


def test_after_start_the_first_request_imports_nothing_but_the_resolvers_thread_pool() -> None:
    cold = _imported_by_first_request("cold")
    assert any(name.startswith("openai.resources.chat") for name in cold), cold  # the hazard
    assert set(_imported_by_first_request("started")) <= {"concurrent.futures.thread"}
