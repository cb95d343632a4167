"""The ``slotline`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from slotline.agent import logs
from slotline.agent.config import load_secrets, load_settings
from slotline.providers.errors import ConfigError
from slotline.providers.extras import exit_on_missing_extra

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slotline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (offline defaults with no config)")
    serve.add_argument("--config", type=Path, help="a YAML file overriding the defaults")
    serve.add_argument("--host", help="bind address (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    serve.add_argument("--workers", type=int,
                       help="processes sharing the port, e.g. one per core (overrides "
                       "server.workers)")
    demo = sub.add_parser(
        "demo", help="a simulated caller phones a local server and books by voice"
    )
    demo.add_argument("--config", type=Path, help="a YAML file overriding the defaults")
    flow = sub.add_parser("flow", help="check or draw a flow file")
    flow_sub = flow.add_subparsers(dest="flow_command", required=True)
    validate = flow_sub.add_parser("validate", help="report every problem, with node and field")
    validate.add_argument("file", type=Path)
    validate.add_argument("--config", type=Path, help="settings naming the booking actions")
    graph = flow_sub.add_parser("graph", help="Mermaid text (or dot/svg/png with Graphviz)")
    graph.add_argument("file", type=Path)
    graph.add_argument("--format", default="mermaid", choices=("mermaid", "dot", "svg", "png"))
    from slotline.agent.bench.args import add_parser as add_bench_parser

    add_bench_parser(sub)
    from slotline.agent.sim.emulate import add_arguments as add_emulate_arguments

    add_emulate_arguments(sub.add_parser("emulate", help="the provider emulators on loopback"))
    from slotline.agent.dialer.cli import add_parser as add_dialer_parsers

    add_dialer_parsers(sub)
    from slotline.agent.calendars_cli import add_parser as add_calendars_parser

    add_calendars_parser(sub)
    return parser


def _version() -> str:
    """The installed distribution's version (pyproject.toml), not a copy that drifts from it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slotline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


@exit_on_missing_extra()
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bench":  # its own configuration handling (the target may be foreign)
        from slotline.agent.bench.cli import main as bench_main

        logs.configure(os.environ.get("SLOTLINE_LOG__LEVEL", "WARNING"))
        return bench_main(args)
    if args.command == "emulate":  # needs no settings: it prints the ones that point at it
        from slotline.agent.sim.emulate import main as emulate_main

        logs.configure(os.environ.get("SLOTLINE_LOG__LEVEL", "WARNING"))
        return asyncio.run(emulate_main(args))
    if args.command in ("call", "campaign", "dnc"):  # clients of a running server: no settings
        from slotline.agent.dialer.cli import main as dialer_main

        return dialer_main(args)
    try:
        settings = load_settings(getattr(args, "config", None), os.environ)
        secrets = load_secrets(os.environ)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log.level, settings.log.format)
    if args.command == "serve":
        from slotline.agent.server.serve import serve, with_address

        if args.workers is not None and args.workers < 1:
            print("slotline: --workers must be at least 1", file=sys.stderr)
            return 2
        settings = with_address(settings, args.host, args.port)
        return serve(settings, secrets, args.config, args.workers)
    if args.command == "calendars":
        from slotline.agent.calendars_cli import list_command

        return asyncio.run(list_command(settings, secrets, args))
    if args.command == "flow":
        from slotline.agent.flow.cli import graph_command, validate_command

        if args.flow_command == "validate":
            return validate_command(args.file, tuple(settings.booking_actions))
        return graph_command(args.file, args.format)
    from slotline.agent.server import event_loop
    from slotline.agent.sim.demo import run_demo

    try:
        return event_loop.run(run_demo(settings, secrets, config_path=args.config),
                              settings.server.event_loop)
    except ConfigError as exc:
        print(f"slotline: invalid configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
