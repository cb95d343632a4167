"""``slotline flow validate FILE`` and ``slotline flow graph FILE`` (hooked up in agent/cli.py).

Exit codes: 0 done (warnings, such as branch conditions only a model can judge, are printed
but do not fail), 1 the flow has problems (each printed with its node and field), 2 the
command cannot do what was asked (unknown format, no Graphviz for SVG/PNG).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

from slotline.agent.flow.graph import dot, mermaid
from slotline.agent.flow.model import Flow
from slotline.agent.flow.validate import (
    FlowInvalid,
    llm_warnings,
    parse_flow,
    read_flow_file,
    validate,
)

GRAPH_FORMATS = ("mermaid", "dot", "svg", "png")
_RENDER_TIMEOUT_S = 30.0  # dot lays out a few dozen nodes in well under a second


def validate_command(path: Path, booking_actions: Collection[str]) -> int:
    """Print every problem of the flow in ``path`` (or that it is sound); 0 when sound."""
    try:
        document = read_flow_file(path)
    except FlowInvalid as exc:
        _print_problems(exc)
        return 1
    problems = validate(document, booking_actions=booking_actions, source=str(path))
    if problems:
        for problem in problems:
            print(problem)
        print(f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        return 1
    flow = Flow.model_validate(document)
    print(f"{path}: OK (flow {flow.name!r}, {len(flow.nodes)} nodes)")
    for warning in llm_warnings(flow, str(path)):
        print(f"warning: {warning}")
    return 0


def graph_command(path: Path, fmt: str) -> int:
    """Print the flow's graph as Mermaid or DOT text, or SVG/PNG bytes rendered by Graphviz."""
    if fmt not in GRAPH_FORMATS:
        print(f"unknown graph format {fmt!r}; expected one of {', '.join(GRAPH_FORMATS)}",
              file=sys.stderr)
        return 2
    try:
        flow = parse_flow(read_flow_file(path), source=str(path))
    except FlowInvalid as exc:
        _print_problems(exc)
        return 1
    if fmt == "mermaid":
        sys.stdout.write(mermaid(flow))
        return 0
    if fmt == "dot":
        sys.stdout.write(dot(flow))
        return 0
    renderer = shutil.which("dot")
    if renderer is None:
        print(f"cannot render {fmt}: Graphviz `dot` is not on PATH. Install graphviz, or use "
              "--format mermaid (paste into any Mermaid viewer) or --format dot.", file=sys.stderr)
        return 2
    done = subprocess.run(
        [renderer, f"-T{fmt}"],
        input=dot(flow).encode(),
        capture_output=True,
        timeout=_RENDER_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        print(f"dot failed: {done.stderr.decode(errors='replace').strip()}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(done.stdout)
    sys.stdout.flush()
    return 0


def _print_problems(exc: FlowInvalid) -> None:
    for problem in exc.problems:
        print(problem)
