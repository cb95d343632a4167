"""The embedding API (``import slotline``): the README's example served in its own process and
called, booking on a calendar plug-in installed as a distribution; the application built and
served in the test's own loop; ``run`` with routes of one's own and with a port in use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import slotline
from slotline.agent.call.prompt_cache import split_sentences
from slotline.agent.config_models import SECRET_ENV_NAMES
from slotline.agent.server.app import CONTEXT
from slotline.agent.server.registry import STT, TTS
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from slotline.providers.stt.local import LocalSpeechToText
from slotline.providers.tts.local import LocalTts
from tests.e2e.conftest import FAST_ENV
from tests.plugin_dist import MEMCAL, installed, write_distribution

README = Path(__file__).resolve().parents[2] / "README.md"
SERVING = re.compile(r"^slotline: serving on (http://\S+)$")


def readme_blocks() -> dict[str, str]:
    """The first ``python`` and ``yaml`` blocks of the README's "Embedding Slotline" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Embedding Slotline\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```$", section, re.M | re.S):
        blocks.setdefault(language, body)
    return blocks


def server_env(folder: Path) -> dict[str, str]:
    """This environment without Slotline's own variables, plus a fresh store and a fast turn."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLOTLINE_") and k not in SECRET_ENV_NAMES}
    return {**env, **FAST_ENV, "SLOTLINE_SERVER__PORT": "0",
            "SLOTLINE_STORE__URL": f"sqlite:///{folder}/embedded.db"}


class Process:
    """A Python script in its own process; its output lines collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name="embedded-stdout")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            found = SERVING.match(line)
            if found and not self.url.done():
                self.url.set_result(found.group(1))
        if not self.url.done():
            self.url.set_exception(RuntimeError(f"exited before serving: {self.lines}"))

    async def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and what it wrote on stderr."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stderr is not None
        stderr = await asyncio.wait_for(self.proc.stderr.read(), 30)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        await self._reader
        return code, stderr.decode()


@asynccontextmanager
async def script(folder: Path, code: str, env: Mapping[str, str]) -> AsyncIterator[Process]:
    path = folder / "app.py"
    path.write_text(code, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(path), cwd=folder, env=dict(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    process = Process(proc)
    try:
        yield process
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(TimeoutError):  # a child may hold its pipes a moment
                await asyncio.wait_for(proc.wait(), 30)


async def demo_call(http: aiohttp.ClientSession, base_url: str) -> str:
    """The demo booking call, placed like Twilio would; its call sid."""
    url, params = await fetch_stream(http, base_url)
    report = await run_caller(url, [caller_wav(u.stem) for u in DEMO_SCRIPT],
                              custom_parameters=params, session=http)
    assert report.closed_by == "server" and report.errors == ()
    return report.call_sid


WRONG_VOICE = """
import slotline


class Voice:
    def __init__(self, context: slotline.ProviderContext[slotline.TtsSettings]) -> None: ...

    def synthesize(self, text: str) -> bytes:  # not a stream of audio chunks
        return b""


slotline.register_tts("wrong", Voice)
"""


def test_the_protocols_type_check_a_custom_provider(tmp_path: Path) -> None:
    """mypy --strict accepts the README's voice and refuses one that is not a TextToSpeech."""
    (tmp_path / "readme_voice.py").write_text(readme_blocks()["python"], encoding="utf-8")
    (tmp_path / "wrong_voice.py").write_text(WRONG_VOICE, encoding="utf-8")
    results = {
        name: subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
             str(tmp_path / f"{name}.py")],
            cwd=README.parent, capture_output=True, text=True, timeout=300,
        )
        for name in ("readme_voice", "wrong_voice")
    }
    assert results["readme_voice"].returncode == 0, results["readme_voice"].stdout
    wrong = results["wrong_voice"]
    assert wrong.returncode == 1
    assert 'Argument 2 to "register_tts" has incompatible type "type[Voice]"' in wrong.stdout


CALENDAR_ENV = {
    "SLOTLINE_CALENDARS__MAIN__PROVIDER": "memcal",
    "SLOTLINE_CALENDARS__MAIN__TIMEZONE": "America/New_York",
    "SLOTLINE_CALENDARS__MAIN__OPTIONS__ROOM": "blue",
}
MODULES = {"slotline_test_memcal": MEMCAL}


def memcal_site(folder: Path) -> Path:
    return write_distribution(folder / "site", "slotline-memcal", MODULES,
                              {"slotline.calendars": {"memcal": "slotline_test_memcal:"
                                                      "MemoryCalendar"}})


async def test_the_readme_example_serves_a_call_in_its_own_voice(tmp_path: Path) -> None:
    blocks = readme_blocks()
    assert len(blocks["python"].splitlines()) <= 22  # a short example, as the README promises
    (tmp_path / "slotline.yaml").write_text(blocks["yaml"], encoding="utf-8")
    # and the calendar an installed plug-in package (entry point) provides
    env = {**server_env(tmp_path), **CALENDAR_ENV, "PYTHONPATH": str(memcal_site(tmp_path))}
    async with script(tmp_path, blocks["python"], env) as app:
        base_url = await asyncio.wait_for(app.url, 60)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base_url}/readyz") as response:
                assert response.status == 200
            call_sid = await demo_call(http, base_url)
            async with http.get(f"{base_url}/api/calls/{call_sid}") as response:
                call = await response.json()
            async with http.get(f"{base_url}/api/bookings") as response:
                (booking,) = (await response.json())["bookings"]
        code, stderr = await app.stop()
    assert code == 0 and "Traceback" not in stderr, stderr
    # Slotline's logging
    assert " INFO slotline.agent.server.embedding: serving on http://" in stderr
    assert call["variables"]["booking_success"] == "yes" and call["errors"] == []
    assert booking["call_sid"] == call_sid and booking["provider"] == "memcal"
    captions = [line.removeprefix("Agent: ") for line in app.lines if line.startswith("Agent: ")]
    # every sentence the agent said on the call went through the custom voice, including
    # those made for this caller ("Thanks, John Smith."), which no cache could have held
    said = [s for t in call["turns"] if t["role"] == "agent" for s in split_sentences(t["text"])]
    assert said and set(said) <= set(captions)
    assert any("John Smith" in caption for caption in captions)


class RecordedStt:
    """The local recogniser as a plug-in, noting when the server starts and closes it."""

    def __init__(self, context: slotline.ProviderContext[slotline.SttSettings]) -> None:
        self.inner = LocalSpeechToText()
        self.events: list[str] = []

    def open_stream(self, *, call_sid: str) -> slotline.SttStream:
        return self.inner.open_stream(call_sid=call_sid)

    async def start(self) -> None:
        await self.inner.start()
        self.events.append("started")

    async def aclose(self) -> None:
        await self.inner.aclose()
        self.events.append("closed")


class ClosingVoice:
    """The offline voice as a plug-in that only needs closing."""

    def __init__(self, context: slotline.ProviderContext[slotline.TtsSettings]) -> None:
        self.inner = LocalTts()
        self.closed = False

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self.inner.synthesize(text)

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def recorded_providers() -> Iterator[None]:
    slotline.register_stt("recorded", RecordedStt)
    slotline.register_tts("closing", ClosingVoice)
    try:
        yield
    finally:
        STT.unregister("recorded")
        TTS.unregister("closing")


async def test_the_app_built_in_ones_own_loop_starts_and_closes_its_providers(
    tmp_path: Path, recorded_providers: None
) -> None:
    env = {**server_env(tmp_path), **CALENDAR_ENV, "SLOTLINE_STT__PROVIDER": "recorded",
           "SLOTLINE_TTS__PROVIDER": "closing"}
    with installed(memcal_site(tmp_path), MODULES):
        app = await slotline.build_app(slotline.load_settings(env=env),
                                       secrets=slotline.load_secrets({}))
        deps = app[CONTEXT].deps
        assert isinstance(deps.stt, RecordedStt) and isinstance(deps.tts, ClosingVoice)
        assert deps.stt.events == []  # built, not started: that is the application's job
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://{host}:{port}/readyz") as response:
                    assert response.status == 200
            (calendar,) = sys.modules["slotline_test_memcal"].MemoryCalendar.made
            assert calendar.context.settings.options == {"room": "blue"}
            assert deps.stt.events == ["started"]
            assert not calendar.closed and not deps.tts.closed
        finally:
            await runner.cleanup()
    assert deps.stt.events == ["started", "closed"]
    assert deps.tts.closed and calendar.closed  # closed with the server


async def test_slotline_serve_workers_load_an_installed_plugin(tmp_path: Path) -> None:
    env = {**server_env(tmp_path), **CALENDAR_ENV, "PYTHONPATH": str(memcal_site(tmp_path))}
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotline.agent.cli", "serve", "--workers", "2", "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env,
        )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        found = re.search(r"(http://127\.0\.0\.1:\d+) with 2 workers", line)
        assert found, line + (tmp_path / "stderr.txt").read_text()
        pids = await _worker_pids(found.group(1), 2)
        assert len(pids) == 2, (tmp_path / "stderr.txt").read_text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.terminate()  # the supervisor stops its workers
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()


async def _worker_pids(url: str, count: int, timeout_s: float = 60.0) -> set[int]:
    """The pids answering ``url`` once ``count`` workers are ready (a new connection each
    time: the kernel spreads connections, not requests, over the workers)."""
    pids: set[int] = set()
    deadline = asyncio.get_running_loop().time() + timeout_s
    limits = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                     timeout=limits) as http:
        while len(pids) < count and asyncio.get_running_loop().time() < deadline:
            try:
                async with http.get(f"{url}/readyz") as ready:
                    if ready.status == 200:
                        async with http.get(f"{url}/healthz") as response:
                            pids.add((await response.json())["pid"])
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    return pids


OWN_APP = '''
import slotline
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello from the host program")


async def app() -> web.Application:
    application = await slotline.build_app(slotline.load_settings())
    application.router.add_get("/hello", hello)
    return application


slotline.run(app(), host="127.0.0.1")
'''


async def test_run_serves_an_application_with_routes_of_ones_own(tmp_path: Path) -> None:
    async with script(tmp_path, OWN_APP, server_env(tmp_path)) as app:
        base_url = await asyncio.wait_for(app.url, 60)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base_url}/hello") as response:
                assert await response.text() == "hello from the host program"
            async with http.get(f"{base_url}/readyz") as response:
                assert response.status == 200
        code, stderr = await app.stop()
    assert code == 0 and "Traceback" not in stderr, stderr


RUN_ON_LOADED_SETTINGS = '''
import slotline

slotline.run(host="127.0.0.1")
'''


async def test_run_without_settings_serves_on_the_loaded_settings_event_loop(
    tmp_path: Path,
) -> None:
    env = {**server_env(tmp_path), "SLOTLINE_SERVER__EVENT_LOOP": "asyncio"}
    async with script(tmp_path, RUN_ON_LOADED_SETTINGS, env) as app:
        base_url = await asyncio.wait_for(app.url, 60)
        async with aiohttp.ClientSession() as http, http.get(f"{base_url}/healthz") as response:
            assert (await response.json())["event_loop"] == "asyncio"  # not auto's uvloop
        code, stderr = await app.stop()
    assert code == 0 and "Traceback" not in stderr, stderr


def test_run_refuses_a_port_in_use_before_building_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = slotline.load_settings(env=server_env(tmp_path))
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: the port is in use"):
            slotline.run(settings, port=port)
    assert not (tmp_path / "embedded.db").exists()  # the store was never opened


def test_run_refuses_an_application_built_in_another_loop() -> None:
    with pytest.raises(TypeError, match="un-awaited build_app"):
        slotline.run(web.Application())  # type: ignore[arg-type]
