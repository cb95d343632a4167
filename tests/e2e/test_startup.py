"""Starting ``slotline serve`` as an operator does: real subprocesses of the installed command.

A port in use is one clear line and a non-zero exit, no traceback; "serving on" comes only once
the port answers (a script may wait for it, then send traffic at once); listening off loopback
without tokens warns; ``--version`` is the package's version. Nothing here binds off loopback:
the 0.0.0.0 case runs against a port already taken, so the warnings print and the bind fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib.metadata import version
from pathlib import Path

import aiohttp
import pytest

SLOTLINE = str(Path(sys.executable).with_name("slotline"))
START_S = 60.0
TWILIO_WARNING = "TWILIO_AUTH_TOKEN is not set and the server listens on 0.0.0.0"
API_WARNING = "SLOTLINE_API_TOKEN is not set and the server listens on 0.0.0.0"


def _env(**extra: str) -> dict[str, str]:
    folder = tempfile.mkdtemp(prefix="slotline-startup-")
    secret = ("TWILIO_AUTH_TOKEN", "SLOTLINE_API_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in secret and not k.startswith("SLOTLINE_")}
    return {**env, "SLOTLINE_STORE__URL": f"sqlite:///{folder}/startup.db", **extra}


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (this one) listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


async def _run(*args: str, env: Mapping[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SLOTLINE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), START_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_port_in_use_is_one_clear_line(taken_port: int, workers: str) -> None:
    code, out, err = await _run("serve", "--port", str(taken_port), "--workers", workers,
                                env=_env())
    assert code == 1
    assert "Traceback" not in err and "serving on" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"slotline: cannot listen on 127.0.0.1:{taken_port}: "), err
    assert "in use" in lines[0]


async def test_off_loopback_without_tokens_warns(taken_port: int) -> None:
    code, _, err = await _run("serve", "--host", "0.0.0.0", "--port", str(taken_port),
                              env=_env())
    assert code == 1 and "Traceback" not in err
    assert TWILIO_WARNING in err and API_WARNING in err
    code, _, err = await _run(
        "serve", "--host", "0.0.0.0", "--port", str(taken_port),
        env=_env(TWILIO_AUTH_TOKEN="t", SLOTLINE_API_TOKEN="a"),
    )
    assert code == 1 and "listens on" not in err, err


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("asyncio", "asyncio")])
async def test_serving_on_is_printed_once_the_port_answers(choice: str, loop: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        SLOTLINE, "serve", "--port", "0", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_env(SLOTLINE_SERVER__EVENT_LOOP=choice),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), START_S)).decode()
        match = re.fullmatch(r"slotline: serving on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        assert int(match.group(2)) != 0  # the port actually bound, not the one asked for
        async with aiohttp.ClientSession() as http:  # at once: no retry, no waiting
            for path in ("/healthz", "/readyz"):
                async with http.get(match.group(1) + path) as response:
                    assert response.status == 200, path
            async with http.get(match.group(1) + "/healthz") as response:
                assert (await response.json())["event_loop"] == loop
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), START_S)
        assert proc.returncode == 0
        assert "listens on" not in err.decode()  # loopback: no exposure warnings
        assert f"(event loop: {loop})" in err.decode()  # uvloop is a dependency: auto takes it
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_bad_flow_never_says_serving_on() -> None:
    code, out, err = await _run("serve", "--port", "0", env=_env(SLOTLINE_FLOW="no_such_flow"))
    assert code == 2 and "serving on" not in out
    assert "invalid configuration" in err and "Traceback" not in err


async def test_an_unknown_event_loop_is_a_configuration_error() -> None:
    code, out, err = await _run("serve", "--port", "0",
                                env=_env(SLOTLINE_SERVER__EVENT_LOOP="tornado"))
    assert code == 2 and "serving on" not in out
    assert "invalid configuration" in err and "event_loop" in err and "Traceback" not in err


async def test_version_is_the_package_version() -> None:
    code, out, _ = await _run("--version", env=_env())
    assert code == 0
    assert out.strip() == f"slotline {version('slotline')}"
