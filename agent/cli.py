"""The ``slotline`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from agent import logs
from agent.config import Secrets, Settings, load_secrets, load_settings
from providers.errors import ConfigError

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slotline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (offline defaults with no config)")
    serve.add_argument("--config", type=Path, help="a YAML file overriding the defaults")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    demo = sub.add_parser(
        "demo", help="a simulated caller phones a local server over the Twilio protocol"
    )
    demo.add_argument("--config", type=Path, help="a YAML file overriding the defaults")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ)
        secrets = load_secrets(os.environ)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log.level)
    if args.command == "serve":
        return _serve(settings, secrets, args.host, args.port)
    from agent.demo import run_demo

    return asyncio.run(run_demo(settings, secrets))


def _serve(settings: Settings, secrets: Secrets, host: str | None, port: int | None) -> int:
    from agent.app import build_app
    from agent.wiring import build_deps

    if host is not None or port is not None:
        server = settings.server.model_copy(
            update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
        )
        settings = settings.model_copy(update={"server": server})
    try:
        deps = build_deps(settings)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    app = build_app(settings, secrets, deps)
    log.info("serving on http://%s:%d", settings.server.host, settings.server.port)
    web.run_app(app, host=settings.server.host, port=settings.server.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
