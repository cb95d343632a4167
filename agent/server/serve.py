"""``slotline serve``: one server process, or a supervisor of ``server.workers`` of them.

The port is bound before anything else, so a port in use is one line and exit code 1, not a
traceback after the providers started; "serving on" is printed once the flow is loaded, the
store opened, the providers started and the port listening — a script may wait for that line.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import socket
import sys
from pathlib import Path

from aiohttp import web

from slotline.agent import logs
from slotline.agent.config import Secrets, Settings, load_secrets, load_settings
from slotline.agent.server.forwarded import is_loopback
from slotline.providers.errors import ConfigError

log = logging.getLogger(__name__)


def with_address(settings: Settings, host: str | None, port: int | None) -> Settings:
    if host is None and port is None:
        return settings
    server = settings.server.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    return settings.model_copy(update={"server": server})


def serve(
    settings: Settings, secrets: Secrets, config_path: Path | None, workers: int | None = None
) -> int:
    """Serve until stopped; several processes on one port when asked (``--workers``)."""
    warn_if_exposed(settings, secrets)
    count = workers if workers is not None else settings.server.workers
    if count > 1:
        from slotline.agent.server.workers import Supervisor

        supervisor = Supervisor(count, config_path, settings.server.host, settings.server.port)
        return supervisor.run()
    return serve_process(settings, secrets, config_path)


def warn_if_exposed(settings: Settings, secrets: Secrets) -> None:
    """What an operator must know before the server faces a network: unsigned webhooks let
    anyone start calls; without an API token the API is closed off loopback."""
    host = settings.server.host
    if is_loopback(host):
        return
    if secrets.twilio_auth_token is None:
        log.warning("TWILIO_AUTH_TOKEN is not set and the server listens on %s: Twilio "
                    "signatures are not checked, anyone who reaches it can start calls", host)
    if secrets.slotline_api_token is None:
        log.warning("SLOTLINE_API_TOKEN is not set and the server listens on %s: /api/* "
                    "answers 401 to every request; set it to use the API", host)


def bind(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Listening-ready sockets for every address ``host`` names (``localhost``: IPv4 and IPv6),
    all on one port (the first one's when ``port`` is 0). ``reuse_port`` only for supervised
    workers: a lone server must fail when another process holds the port."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT after restart
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if sockets[0] is not sock:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_process(
    settings: Settings, secrets: Secrets, config_path: Path | None, *, reuse_port: bool = False,
    announce: bool = True,
) -> int:
    from slotline.agent.server.app import build_app
    from slotline.agent.server.event_loop import loop_name, new_event_loop
    from slotline.agent.server.heap import settled_heap
    from slotline.agent.server.wiring import build_deps

    async def make_app() -> web.Application:
        deps = await build_deps(settings, secrets, config_path=config_path)
        if deps.dialer is not None and settings.server.port:
            deps.dialer.serving_at(f"http://{settings.server.host}:{settings.server.port}")
        app = build_app(settings, secrets, deps)
        app.cleanup_ctx.append(settled_heap)  # last: after every resource has started
        return app

    try:
        loop = new_event_loop(settings.server.event_loop)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    host, port = settings.server.host, settings.server.port
    try:
        sockets = bind(host, port, reuse_port=reuse_port)
    except OSError as exc:
        reason = ("the port is in use by another process" if exc.errno == errno.EADDRINUSE
                  else exc.strerror or str(exc))
        print(f"slotline: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        loop.close()
        return 1
    urls = ", ".join(dict.fromkeys(_url(sock) for sock in sockets))

    def ready(_: str) -> None:  # aiohttp calls it once every site listens
        log.info("serving on %s (event loop: %s)", urls, loop_name(loop))
        if announce:
            print(f"slotline: serving on {urls}", flush=True)

    try:
        web.run_app(make_app(), sock=sockets, print=ready, loop=loop)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    return 0


def serve_worker(config_path: Path | None, host: str, port: int) -> int:
    """A supervised worker: settings and secrets from the file and this process's environment."""
    try:
        settings = with_address(load_settings(config_path, os.environ), host, port)
        secrets = load_secrets(os.environ)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log.level, settings.log.format,
                   worker=multiprocessing.current_process().name)
    # the supervisor announces the port; each worker logs its own "serving on"
    return serve_process(settings, secrets, config_path, reuse_port=True, announce=False)
