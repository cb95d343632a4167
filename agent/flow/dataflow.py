"""Graph analyses for flow validation: reachability, loops that never wait, and which variables
are known at each node.

The graph has the edges of :mod:`agent.flow.table` plus one implicit edge from every node where
the caller speaks to every intent target (an intent can fire there). A variable is *available*
at a node when every path from the start sets it before reaching the node (or it is a default):
a must-analysis, meet = intersection, solved by iterating to a fixed point. *May* be set is the
same with union; it tells "used before any node collects it" apart from "not on every path".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from slotline.agent.flow.model import Node
from slotline.agent.flow.table import INSTANT, WAITS_FOR_CALLER, Edge, edge_may_set, edge_outputs

_INTENT = "intent"


@dataclass(frozen=True, slots=True)
class Graph:
    start: str
    intent_targets: tuple[str, ...]
    nodes: Mapping[str, Node]  # every node that parsed
    edges: Mapping[str, tuple[Edge, ...]]  # every node id; best effort for nodes that did not

    def successors(self, node_id: str) -> list[Edge]:
        found = [edge for edge in self.edges.get(node_id, ()) if edge.target in self.edges]
        node = self.nodes.get(node_id)
        if node is not None and node.type in WAITS_FOR_CALLER:
            found.extend(Edge(_INTENT, _INTENT, target) for target in self.intent_targets)
        return found


def reachable(graph: Graph) -> list[str]:
    """Node ids reachable from the start or an intent target, breadth first."""
    roots = [root for root in (graph.start, *graph.intent_targets) if root in graph.edges]
    seen = dict.fromkeys(roots)
    queue = deque(seen)
    while queue:
        for edge in graph.successors(queue.popleft()):
            if edge.target not in seen:
                seen[edge.target] = None
                queue.append(edge.target)
    return list(seen)


def instant_loops(graph: Graph, order: list[str]) -> list[tuple[str, str, list[str]]]:
    """Cycles through instant nodes only (they would run forever without waiting for anything),
    as (node id, edge key, cycle path) where the edge closes the cycle."""
    instant = {n for n in order if n in graph.nodes and graph.nodes[n].type in INSTANT}
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    stack: list[str] = []
    loops: list[tuple[str, str, list[str]]] = []

    def visit(node_id: str) -> None:
        state[node_id] = 1
        stack.append(node_id)
        for edge in graph.successors(node_id):
            if edge.target not in instant:
                continue
            if state.get(edge.target) == 1:
                cycle = stack[stack.index(edge.target) :] + [edge.target]
                loops.append((node_id, edge.key, cycle))
            elif edge.target not in state:
                visit(edge.target)
        stack.pop()
        state[node_id] = 2

    for node_id in order:
        if node_id in instant and node_id not in state:
            visit(node_id)
    return loops


Transfer = Callable[[Node, str], frozenset[str]]


def _solve(
    graph: Graph, order: list[str], base: frozenset[str], gen: Transfer, *, must: bool
) -> dict[str, frozenset[str]]:
    known: dict[str, frozenset[str]] = {}
    if graph.start in graph.edges:
        known[graph.start] = base
    changed = True
    while changed:
        changed = False
        for node_id in order:
            here = known.get(node_id)
            if here is None:
                continue
            node = graph.nodes.get(node_id)
            for edge in graph.successors(node_id):
                sets = gen(node, edge.key) if node is not None and edge.key != _INTENT else None
                out = here | sets if sets else here
                before = known.get(edge.target)
                after = out if before is None else (before & out if must else before | out)
                if after != before:
                    known[edge.target] = after
                    changed = True
    return known


Known = dict[str, frozenset[str]]


def must_available(graph: Graph, order: list[str], base: frozenset[str]) -> Known:
    """Variables set on every path to each reachable node."""
    return _solve(graph, order, base, edge_outputs, must=True)


def may_available(graph: Graph, order: list[str], base: frozenset[str]) -> Known:
    """Variables set on some path to each reachable node."""
    return _solve(graph, order, base, edge_may_set, must=False)


def path_without(graph: Graph, variable: str, target: str) -> list[tuple[str, str]]:
    """A shortest path from the start to ``target`` on which ``variable`` is never surely set
    (the evidence for "not collected on every path"), as (node id, key of the edge that led
    there; "" for the start); [] when there is none."""
    if graph.start not in graph.edges:
        return []
    parents: dict[str, tuple[str, str] | None] = {graph.start: None}
    queue = deque([graph.start])
    while queue:
        node_id = queue.popleft()
        if node_id == target:
            path: list[tuple[str, str]] = []
            step: str | None = node_id
            while step is not None:
                parent = parents[step]
                path.append((step, parent[1] if parent else ""))
                step = parent[0] if parent else None
            return path[::-1]
        node = graph.nodes.get(node_id)
        for edge in graph.successors(node_id):
            sets = edge_outputs(node, edge.key) if node and edge.key != _INTENT else frozenset()
            if variable not in sets and edge.target not in parents:
                parents[edge.target] = (node_id, edge.key)
                queue.append(edge.target)
    return []
