"""Slotline as a new user gets it: the wheel built from this checkout, installed with its default
(lean) dependencies at the versions in constraints.txt into a clean venv in a temporary folder,
and run from another temporary folder (nothing from the checkout on the path, no system site
packages). ``slotline demo`` books a call, ``slotline serve`` answers /readyz, ``--version``
says the package's version, and a command that needs an extra says which one to install.

Takes ~1.5 min on two busy cores (build ~5 s, venv + install ~35 s, demo ~50 s, serve ~5 s):
    .venv/bin/pytest -n 0 tests/e2e/test_wheel_install.py --durations=0
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the wheel is built from: the Dockerfile copies the same.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "slotline", "agent", "providers", "audio",
           "config")  # fmt: skip
INSTALL_S = 600.0  # resolving and unpacking ~50 wheels from the registry; ~35 s when idle
DEMO_S = 300.0  # one real-time booking call, ~50 s
READY_S = 90.0


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    run: Path  # an empty folder outside the checkout: the commands' working directory
    env: Mapping[str, str]
    probe: tuple[str, str, str]  # right after installing: slotline's files, extras' modules

    def slotline(
        self, *args: str, timeout_s: float = 60.0, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin/slotline"), *args], cwd=self.run,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout_s, check=False)  # fmt: skip


def _clean_env() -> dict[str, str]:
    """This environment without anything that points Python at the checkout or another venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONSAFEPATH")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SLOTLINE_")}


def _run(args: list[str], cwd: Path, env: Mapping[str, str], timeout_s: float) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)  # fmt: skip
    assert done.returncode == 0, f"{args[:4]}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel-install")
    env = _clean_env()
    source = base / "src"  # a copy, so the build leaves nothing behind in the checkout
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        else:
            shutil.copy2(path, source / name)
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist),
          str(source)], base, env, INSTALL_S)  # fmt: skip
    (wheel,) = dist.glob("slotline-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base, env, 120.0)
    config = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config
    # --no-compile: byte-compiling ~50 packages costs more than this test's commands save.
    _run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-compile",
          "-c", str(ROOT / "constraints.txt"), str(wheel)], base, env, INSTALL_S)  # fmt: skip
    run = base / "run"
    run.mkdir()
    yield Installed(venv, wheel, run, env, _probe(venv, run, env))
    shutil.rmtree(base, ignore_errors=True)  # ~400 MB; pytest would keep three runs of it


def test_the_installed_package_is_the_wheels_and_lean(installed: Installed) -> None:
    package, wiring, extras = installed.probe
    site = installed.venv.resolve()
    assert Path(package).resolve().is_relative_to(site), package
    assert Path(wiring).resolve().is_relative_to(site), wiring
    assert not Path(package).resolve().is_relative_to(ROOT)
    assert extras == ""  # none of the extras came with the default install
    shipped = Path(package).parent
    for data in ("py.typed", "config/slotline.yaml", "config/flows/demo_booking.yaml",
                 "agent/assets/caller/yes.wav", "providers/emulators/specs/twilio/LICENSE",
                 "providers/emulators/specs/openai/openapi.yaml"):  # fmt: skip
        assert (shipped / data).is_file(), data


def _probe(venv: Path, cwd: Path, env: Mapping[str, str]) -> tuple[str, str, str]:
    """Where slotline is imported from, and which extras' modules are importable."""
    probe = ("import importlib.util as u, slotline, slotline.agent.server.wiring as w; "
             "print(slotline.__file__); print(w.__file__); "
             "print(','.join(m for m in ('openai', 'httpx2', 'jsonschema', 'asyncpg', 'caldav', "
             "'google.auth', 'websockets', 'onnxruntime', 'pytest') "
             "if u.find_spec(m.partition('.')[0])))")  # fmt: skip
    done = subprocess.run([str(venv / "bin/python"), "-c", probe], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    package, wiring, extras = done.stdout.splitlines()
    return package, wiring, extras


def test_version(installed: Installed) -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = installed.slotline("--version")
    assert done.returncode == 0 and done.stdout.split() == ["slotline", expected]


def test_demo_books_a_call_from_a_folder_outside_the_checkout(installed: Installed) -> None:
    done = installed.slotline("demo", timeout_s=DEMO_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "PASS: every utterance transcribed and answered" in done.stdout
    assert "booking " in done.stdout and " confirmed on calendar 'main'" in done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_serve_answers_readyz(installed: Installed) -> None:
    port = _free_port()
    server = subprocess.Popen([str(installed.venv / "bin/slotline"), "serve", "--port", str(port)],
                              cwd=installed.run, env=installed.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + READY_S
        while (status := _status(f"http://127.0.0.1:{port}/readyz")) != 200:
            assert server.poll() is None and time.monotonic() < deadline, status
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert f"serving on http://127.0.0.1:{port}" in output
    assert "Traceback" not in output
    assert (installed.run / "slotline.db").is_file()  # the default store, where it was started


@pytest.mark.parametrize(("args", "env", "extra"), [
    (("emulate", "deepgram"), {}, "emulators"),
    (("serve", "--port", "0"), {"SLOTLINE_STORE__URL": "postgresql://u@127.0.0.1:1/x"}, "postgres"),
])  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(
    installed: Installed, args: tuple[str, ...], env: dict[str, str], extra: str
) -> None:
    done = installed.slotline(*args, env=env)
    assert done.returncode == 2
    assert f"not installed; pip install 'slotline[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_with_the_emulators_extra_the_emulators_check_against_the_shipped_specs(
    installed: Installed,
) -> None:
    """Last: it adds the extra to the venv. No ../shared/specs beside an installed package: the
    Twilio emulator refuses an undeclared form field from the excerpt inside the wheel."""
    _run([str(installed.venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-compile",
          "-c", str(ROOT / "constraints.txt"), f"{installed.wheel}[emulators]"], installed.run,
         installed.env, INSTALL_S)  # fmt: skip
    env_file = installed.run / "emulated.env"
    emulate = subprocess.Popen(
        [str(installed.venv / "bin/slotline"), "emulate", "twilio", "openai", "ghl", "google",
         "--env-file", str(env_file)], cwd=installed.run, env=installed.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + READY_S
        while not (env_file.is_file() and (text := env_file.read_text()).endswith("\n")):
            if emulate.poll() is not None or time.monotonic() > deadline:
                emulate.kill()
                pytest.fail(f"emulate did not start: {emulate.communicate()[0][-3000:]}")
            time.sleep(0.2)
        values = dict(word.partition("=")[::2] for word in shlex.split(text, comments=True))
        sid, token = values["TWILIO_ACCOUNT_SID"], values["TWILIO_AUTH_TOKEN"]
        url = f"{values['SLOTLINE_TWILIO__BASE_URL']}/2010-04-01/Accounts/{sid}/Calls.json"
        form = "To=%2B15550100&From=%2B15550101&Url=https%3A%2F%2Fx.test%2Ft&Colour=red"
        request = urllib.request.Request(url, data=form.encode(), method="POST")
        request.add_header("Authorization", "Basic " + base64.b64encode(
            f"{sid}:{token}".encode()).decode())  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        body = json.loads(refused.value.read())
        assert refused.value.code == 400 and body["code"] == 70002, body
        assert "Colour" in body["message"]
    finally:
        emulate.send_signal(signal.SIGINT)
        output, _ = emulate.communicate(timeout=60)
    assert "Traceback" not in output, output[-3000:]
