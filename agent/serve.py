"""``slotline serve``: one server process, or a supervisor of ``server.workers`` of them."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from agent import logs
from agent.config import Secrets, Settings, load_secrets, load_settings
from providers.errors import ConfigError

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
    count = workers if workers is not None else settings.server.workers
    if count > 1:
        from agent.workers import Supervisor

        supervisor = Supervisor(count, config_path, settings.server.host, settings.server.port)
        return supervisor.run()
    return serve_process(settings, secrets, config_path)


def serve_process(
    settings: Settings, secrets: Secrets, config_path: Path | None, *, reuse_port: bool = False
) -> int:
    from agent.app import build_app
    from agent.wiring import build_deps

    async def make_app() -> web.Application:
        deps = await build_deps(settings, secrets, config_path=config_path)
        if deps.dialer is not None and settings.server.port:
            deps.dialer.serving_at(f"http://{settings.server.host}:{settings.server.port}")
        return build_app(settings, secrets, deps)

    log.info("serving on http://%s:%d", settings.server.host, settings.server.port)
    try:
        web.run_app(make_app(), host=settings.server.host, port=settings.server.port,
                    reuse_port=reuse_port, print=None)
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
    logs.configure(settings.log.level)
    return serve_process(settings, secrets, config_path, reuse_port=True)
