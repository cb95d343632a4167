"""What the bench phones: a Slotline server it starts, or any Twilio Media Streams server.

* ``SubprocessSlotline`` (the default): the vendors' emulators in one child process and
  ``slotline serve`` in another, so the server's CPU and memory can be read from /proc
  without the callers' or the emulators' share. Both children get their own session, so a
  Ctrl-C at the terminal reaches only the bench, which then stops them after the report.
* ``InProcessSlotline``: the same server and emulators on the bench's own event loop (quick
  to start: the tests use it; process figures then include the callers).
* ``ForeignTarget``: ``--target ws://HOST:PORT/PATH``. The callers open that WebSocket
  directly (no ``/twilio/voice``, no call log); ``--target-pid`` lets the bench sample a
  server on this machine.

Every target yields a ``TargetInfo`` when entered and cleans up on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol

import aiohttp

from slotline.agent.bench.profiles import Profile
from slotline.agent.bench.vendors import EmulatedVendors, memo_path
from slotline.agent.server.event_loop import loop_name
from slotline.agent.server.workers import exit_with_parent
from slotline.providers.errors import ConfigError

_START_TIMEOUT_S = 60.0  # model loading on a cold machine


@dataclass(frozen=True, slots=True)
class TargetInfo:
    kind: Literal["slotline-subprocess", "slotline-inprocess", "foreign"]
    media_url: str  # ws://…/twilio/media or the foreign URL
    http_url: str | None  # Slotline: http://host:port (voice webhook, call log)
    server_pid: int | None  # a process on this machine to sample
    vendors_pid: int | None
    shared_process: bool  # the server runs inside the bench process
    server_cpus: tuple[int, ...] = ()  # the server pinned to these CPUs, the harness to the rest
    event_loop: str | None = None  # what the server runs on, as its /healthz says (Slotline)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "media_url": self.media_url, "http_url": self.http_url,
                "server_pid": self.server_pid, "vendors_pid": self.vendors_pid,
                "shared_process": self.shared_process, "server_cpus": list(self.server_cpus),
                "event_loop": self.event_loop}


class Target(Protocol):
    async def __aenter__(self) -> TargetInfo: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def vendor_stats(self) -> dict[str, int]:
        """What the emulated vendors were asked (empty without emulators)."""
        ...

    def vendor_loop_lag(self) -> dict[str, dict[str, Any]]:
        """``{"vendors": lag summary}`` when the emulators ran in a process of their own."""
        ...


class ForeignTarget:
    def __init__(self, url: str, pid: int | None = None) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError("--target", url, "must be a ws:// or wss:// URL")
        self._info = TargetInfo("foreign", url, None, pid, None, False)

    async def __aenter__(self) -> TargetInfo:
        return self._info

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def vendor_stats(self) -> dict[str, int]:
        return {}

    def vendor_loop_lag(self) -> dict[str, dict[str, Any]]:
        return {}


def _scratch_env(folder: str, base: dict[str, str]) -> dict[str, str]:
    """A fresh store per run; no Twilio signatures or public URL (the bench plays Twilio on
    loopback and signs nothing)."""
    env = {k: v for k, v in base.items() if k != "TWILIO_AUTH_TOKEN"}
    env.setdefault("SLOTLINE_STORE__URL", f"sqlite:///{folder}/bench.db")
    env["SLOTLINE_SERVER__PUBLIC_URL"] = ""
    return env


class InProcessSlotline:
    def __init__(self, profile: Profile, *, config_path: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self._profile = profile
        self._config_path = config_path
        self._env = dict(env or {})
        self._stack = AsyncExitStack()
        self._vendors: EmulatedVendors | None = None

    async def __aenter__(self) -> TargetInfo:
        from slotline.agent.config import load_secrets, load_settings
        from slotline.agent.server.wiring import build_deps
        from slotline.agent.sim.demo import start_server

        try:
            scratch = tempfile.TemporaryDirectory(prefix="slotline-bench-")
            env = _scratch_env(self._stack.enter_context(scratch), self._env)
            env["SLOTLINE_SERVER__HOST"] = "127.0.0.1"
            if self._profile.emulated:
                self._vendors = await self._stack.enter_async_context(
                    EmulatedVendors(self._profile))
                env |= self._vendors.server_env()
            settings = load_settings(self._config_path, env)
            secrets = load_secrets(env)
            deps = await build_deps(settings, secrets, config_path=self._config_path)
            runner, url = await start_server(settings, secrets, deps)
            self._stack.push_async_callback(runner.cleanup)
        except BaseException:
            await self._stack.aclose()
            raise
        media = url.replace("http://", "ws://") + "/twilio/media"
        return TargetInfo("slotline-inprocess", media, url, os.getpid(), None, True,
                          event_loop=loop_name(asyncio.get_running_loop()))

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    def vendor_stats(self) -> dict[str, int]:
        return self._vendors.stats() if self._vendors is not None else {}

    def vendor_loop_lag(self) -> dict[str, dict[str, Any]]:
        return {}  # the emulators share the bench's loop: its lag is theirs


def _open_log(path: Path) -> IO[bytes]:
    """A child's stderr goes to a file in the output folder (opened once, at start-up)."""
    return path.open("wb")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Child:
    """A child process in its own session, stopped by closing its stdin (then SIGTERM)."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process

    async def first_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(_START_TIMEOUT_S):
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench: the {self.name} process exited during start-up "
                               f"(status {await self.process.wait()})")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    async def stop(self) -> bytes:
        """Ask it to stop; returns whatever it printed on the way out."""
        process = self.process
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if process.returncode is None and self.name == "server":
            process.terminate()  # `slotline serve` stops on SIGTERM
        try:
            async with asyncio.timeout(10):
                out = await process.stdout.read() if process.stdout is not None else b""
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            out = b""
        return out


async def _spawn(name: str, argv: list[str], env: dict[str, str], log: IO[bytes]) -> _Child:
    """``argv`` in a session of its own; it exits with this process even when this one is
    killed with SIGKILL (no clean-up runs then: a killed turn-end set left its server up)."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=log, start_new_session=True,
        preexec_fn=functools.partial(exit_with_parent, os.getpid()),
    )
    return _Child(name, process)


class SubprocessSlotline:
    """Slotline started as ``slotline serve`` in its own process (vendors on emulators in
    another). ``server_cpus``: pin the server to these CPUs and the bench with every other
    process it starts (vendors, load processes) to the remaining ones, so the server's core
    carries nothing but the server (Linux ``sched_setaffinity``)."""

    def __init__(self, profile: Profile, *, log_dir: Path, config_path: Path | None = None,
                 env: dict[str, str] | None = None,
                 server_cpus: frozenset[int] = frozenset()) -> None:
        self._profile = profile
        self._server_cpus = server_cpus
        self._log_dir = log_dir
        self._config_path = config_path
        self._env = dict(os.environ if env is None else env)
        self._stack = AsyncExitStack()
        self._vendors: _Child | None = None
        self._stats: dict[str, int] = {}
        self._loop_lag: dict[str, Any] | None = None

    async def __aenter__(self) -> TargetInfo:
        try:
            return await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> TargetInfo:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        folder = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="slotline-bench-"))
        env = _scratch_env(folder, self._env)
        env["SLOTLINE_LOG__LEVEL"] = env.get("SLOTLINE_LOG__LEVEL", "WARNING")
        if self._server_cpus:  # the harness leaves the server's CPUs (its children inherit it)
            everything = os.sched_getaffinity(0)
            os.sched_setaffinity(0, everything - self._server_cpus)
            self._stack.callback(os.sched_setaffinity, 0, everything)
        vendors_pid = None
        if self._profile.emulated:
            log = self._stack.enter_context(_open_log(self._log_dir / "vendors.log"))
            argv = [sys.executable, "-m", "slotline.agent.bench.vendors",
                    json.dumps(self._profile.as_dict()), str(memo_path())]
            self._vendors = await _spawn("vendors", argv, env, log)
            self._stack.push_async_callback(self._stop_vendors)
            started = await self._vendors.first_line()
            env |= started["env"]
            vendors_pid = int(started["pid"])
        port = _free_port()
        argv = [sys.executable, "-m", "slotline.agent.cli", "serve", "--host", "127.0.0.1",
                "--port", str(port)]
        if self._config_path is not None:
            argv += ["--config", str(self._config_path)]
        log = self._stack.enter_context(_open_log(self._log_dir / "server.log"))
        server = await _spawn("server", argv, env, log)
        self._stack.push_async_callback(server.stop)
        if self._server_cpus:
            os.sched_setaffinity(server.process.pid, self._server_cpus)
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url, server.process)
        media = f"ws://127.0.0.1:{port}/twilio/media"
        return TargetInfo("slotline-subprocess", media, url, server.process.pid, vendors_pid,
                          False, tuple(sorted(self._server_cpus)),
                          event_loop=await _event_loop_of(url))

    async def _stop_vendors(self) -> None:
        assert self._vendors is not None
        for line in (await self._vendors.stop()).splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                said = json.loads(line)
                self._stats = said.get("stats", self._stats)
                self._loop_lag = said.get("loop_lag_ms", self._loop_lag)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    def vendor_stats(self) -> dict[str, int]:
        return dict(self._stats)

    def vendor_loop_lag(self) -> dict[str, dict[str, Any]]:
        return {} if self._loop_lag is None else {"vendors": self._loop_lag}


async def _event_loop_of(url: str) -> str | None:
    """What the server at ``url`` runs on ("uvloop" or "asyncio"), as its /healthz says."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as response:
        loop = (await response.json()).get("event_loop")
        return loop if isinstance(loop, str) else None


async def _wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"bench: the server exited during start-up (status "
                                   f"{process.returncode}); see server.log")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"bench: the server at {url} was not ready within {_START_TIMEOUT_S} s")


__all__ = ["ForeignTarget", "InProcessSlotline", "SubprocessSlotline", "Target", "TargetInfo"]
