"""Slotline inside another Python program: settings, the aiohttp application, serving it.

``slotline`` re-exports these (with the provider registry, ``agent.server.registry``):

    settings = slotline.load_settings("slotline.yaml")     # defaults < file < SLOTLINE_* env
    app = await slotline.build_app(settings)               # an aiohttp web.Application
    slotline.run(settings)                                 # or serve it: blocks until stopped

``build_app`` is a coroutine because the store is opened and the providers are built before
the application exists; the providers' long-lived resources start with the application (its
cleanup context) and close with it, so run it in the loop that built it (``web.AppRunner``),
or hand the un-awaited ``build_app(...)`` to ``run``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Mapping
from pathlib import Path

from aiohttp import web

from slotline.agent import config, logs
from slotline.agent.config_models import Secrets, Settings
from slotline.agent.server import event_loop
from slotline.agent.server.serve import bind, warn_if_exposed, with_address

log = logging.getLogger(__name__)


def load_settings(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """The embedded defaults, overridden by the YAML file at ``path`` (if given), overridden by
    ``SLOTLINE_<SECTION>__<KEY>`` variables in ``env`` (default: this process's environment).
    Raises ``InvalidConfig`` (a ``ConfigError``) listing every problem. Register plug-in
    providers first: an unknown provider name is one of those problems."""
    return config.load_settings(Path(path) if path is not None else None,
                                os.environ if env is None else env)


def configure_logging(settings: Settings) -> None:
    """Slotline's logging as ``slotline serve`` has it: ``log.level`` and ``log.format`` (text
    or JSON lines) on one root handler that masks phone numbers and e-mail addresses and
    rate-limits repeated warnings. It replaces the root logger's handlers; a program with its
    own logging can instead add ``slotline.agent.logs.MaskingFilter`` to its handlers."""
    logs.configure(settings.log.level, settings.log.format)


def load_secrets(env: Mapping[str, str] | None = None) -> Secrets:
    """The credentials (``TWILIO_AUTH_TOKEN``, ``DEEPGRAM_API_KEY``, ...) set in ``env``
    (default: this process's environment)."""
    return config.load_secrets(os.environ if env is None else env)


async def build_app(
    settings: Settings | None = None,
    *,
    secrets: Secrets | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> web.Application:
    """The server's aiohttp application: Twilio webhooks, the media WebSocket, health,
    metrics and the API. ``settings`` default to ``load_settings(config_path)``; flows named
    in them are also looked for beside ``config_path``. ``secrets`` default to the
    environment's. Raises ``ConfigError`` for settings that cannot run (a missing key, a
    plug-in that cannot be built)."""
    from slotline.agent.server.app import build_app as build_application
    from slotline.agent.server.wiring import build_deps

    path = Path(config_path) if config_path is not None else None
    settings = settings if settings is not None else load_settings(path)
    secrets = secrets if secrets is not None else load_secrets()
    deps = await build_deps(settings, secrets, config_path=path)
    return build_application(settings, secrets, deps)


AppSource = Settings | Awaitable[web.Application] | None


def run(
    app: AppSource = None,
    *,
    host: str | None = None,
    port: int | None = None,
    config_path: str | os.PathLike[str] | None = None,
    announce: bool = True,
) -> None:
    """Serve until SIGINT or SIGTERM, in an event loop of its own: the settings'
    ``server.event_loop`` (``app`` or the loaded ones), else ``auto`` (uvloop where installed).
    ``app``: settings (``None``: ``load_settings(
    config_path)``), or an un-awaited ``build_app(...)`` (to add routes first, await it inside
    a coroutine of your own and pass that). The address is ``host``/``port``, else the app's
    ``server.host``/``server.port`` (port 0: any free port). With settings the port is bound
    before anything starts, so a port in use fails fast. Once listening it logs, and with
    ``announce`` prints, ``slotline: serving on http://HOST:PORT``. If the program has not
    configured logging (no root handler), ``configure_logging`` is applied.

    Raises ``ConfigError`` for invalid settings and ``OSError`` when the port cannot be bound.
    """
    if isinstance(app, web.Application):
        raise TypeError(
            "run() serves in an event loop of its own, and an application already built is "
            "tied to the loop that built it: pass settings or the un-awaited build_app(...), "
            "or serve the application with aiohttp's web.AppRunner in your own loop"
        )
    if app is None:  # read before the loop starts: they choose it (server.event_loop)
        app = load_settings(config_path)
    choice = app.server.event_loop if isinstance(app, Settings) else "auto"
    try:
        event_loop.run(_serve(app, host, port, config_path, announce), choice)
    except (web.GracefulExit, KeyboardInterrupt):  # SIGTERM, SIGINT: stopped as asked
        pass


async def _serve(
    source: Settings | Awaitable[web.Application],
    host: str | None,
    port: int | None,
    config_path: str | os.PathLike[str] | None,
    announce: bool,
) -> None:
    from slotline.agent.server.app import CONTEXT

    sockets = None
    if isinstance(source, Settings):
        path = Path(config_path) if config_path is not None else None
        settings = with_address(source, host, port)
        sockets = _bind(settings)  # before the store opens and the models load
        _default_logging(settings)
        source = build_app(settings, config_path=path)
    try:
        app = await source
    except BaseException:
        for sock in sockets or ():
            sock.close()
        raise
    context = app[CONTEXT]
    if sockets is None:
        _default_logging(context.settings)
        sockets = _bind(with_address(context.settings, host, port))
    warn_if_exposed(context.settings, context.secrets)
    runner = web.AppRunner(app, handle_signals=True)
    try:
        await runner.setup()  # the providers' resources start here
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        urls = list(dict.fromkeys(_url(sock) for sock in sockets))
        if context.deps.dialer is not None:
            context.deps.dialer.serving_at(urls[0])  # outbound callbacks, no public_url set
        log.info("serving on %s", ", ".join(urls))
        if announce:
            print(f"slotline: serving on {', '.join(urls)}", flush=True)
        await asyncio.Event().wait()  # until the loop is stopped (a signal) or cancelled
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()


def _default_logging(settings: Settings) -> None:
    if not logging.getLogger().handlers:
        configure_logging(settings)


def _bind(settings: Settings) -> list[socket.socket]:
    host, port = settings.server.host, settings.server.port
    try:
        return bind(host, port)
    except OSError as exc:
        reason = ("the port is in use by another process" if exc.errno == errno.EADDRINUSE
                  else exc.strerror or str(exc))
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


__all__ = ["build_app", "configure_logging", "load_secrets", "load_settings", "run"]
