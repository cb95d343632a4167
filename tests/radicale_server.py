"""A real Radicale CalDAV server for tests, started as a subprocess on a free loopback port.

``running_radicale(directory)`` is a (sync) context manager: it starts
``python -m radicale --config "" --server-hosts 127.0.0.1:PORT --auth-type none --auth-delay 0
--storage-filesystem-folder DIR``, waits until the server answers, creates one calendar
collection with the caldav client (MKCALENDAR) and stops the server on exit. With ``users``
it checks passwords instead (htpasswd, plain), so tests also see real 401 answers.

It is synchronous on purpose: a module-scoped fixture can start it once, outside any event
loop, and every async test (each on its own loop) talks to it over the socket.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from caldav.davclient import DAVClient

_START_TIMEOUT_S = 10.0  # a cold start takes ~0.2 s; generous for a loaded CI machine
_POLL_S = 0.02
_STOP_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3  # the free port may be taken between probing and binding it


@dataclass(frozen=True, slots=True)
class RadicaleServer:
    origin: str  # http://127.0.0.1:PORT
    username: str | None
    password: str | None
    calendar_url: str  # the collection created at start-up

    def make_calendar(self, name: str | None = None) -> str:
        """Create one more calendar collection (MKCALENDAR) and return its URL."""
        return _make_calendar(self.origin, self.username, self.password, name)


@contextmanager
def running_radicale(
    directory: Path, *, users: Mapping[str, str] | None = None
) -> Iterator[RadicaleServer]:
    """Start Radicale storing into ``directory`` (see the module doc); stop it on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = ["--auth-type", "none"]
    username = password = None
    if users:
        htpasswd = directory / "users"
        htpasswd.write_text("".join(f"{name}:{secret}\n" for name, secret in users.items()))
        auth = [
            "--auth-type", "htpasswd",
            "--auth-htpasswd-filename", str(htpasswd),
            "--auth-htpasswd-encryption", "plain",
        ]
        username, password = next(iter(users.items()))
    log_path = directory / "radicale.log"
    for _attempt in range(_START_ATTEMPTS):
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "radicale", "--config", "",
                    "--server-hosts", f"127.0.0.1:{port}", *auth, "--auth-delay", "0",
                    "--storage-filesystem-folder", str(directory / "collections"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            origin = f"http://127.0.0.1:{port}"
            if not _wait_until_up(origin, process):
                _stop(process)
                continue
            calendar_url = _make_calendar(origin, username, password, "calendar")
            yield RadicaleServer(origin, username, password, calendar_url)
            return
        finally:
            _stop(process)
    raise RuntimeError(f"Radicale did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")


def _make_calendar(
    origin: str, username: str | None, password: str | None, name: str | None
) -> str:
    url = f"{origin}/{username or 'slotline'}/{name or 'cal-' + uuid.uuid4().hex[:12]}/"
    with DAVClient(url=url, username=username, password=password) as client:
        response = client.mkcalendar(url)
    if response.status != 201:
        raise RuntimeError(f"MKCALENDAR {url} → {response.status} {response.reason}")
    return url


def free_port() -> int:
    """A loopback port nothing listens on right now (also: an unreachable server's port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(origin: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False  # it exited (e.g. the port was taken meanwhile)
        try:
            with urllib.request.urlopen(origin + "/.web/", timeout=1.0):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            time.sleep(_POLL_S)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
