"""Checking a flow file and loading it: every problem, each with the node id and the field.

:func:`validate` never stops at the first problem. It reports, in this order: the flow's own
fields, each node on its own (unknown type, missing or unknown field, bad extractor kind, bad
template), then the flow as a whole (edges to missing nodes, booking actions that are not
configured, unreachable nodes, loops that never wait for the caller, and variables used where
not every path from the start has collected them). The whole-flow analyses of variables run only
once every node reads cleanly, so one typo does not cause a cascade of follow-on reports.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from slotline.agent.flow.dataflow import (
    Graph,
    instant_loops,
    may_available,
    must_available,
    path_without,
)
from slotline.agent.flow.dataflow import reachable as reachable_nodes
from slotline.agent.flow.model import (
    NODE_ID_PATTERN,
    NODE_MODELS,
    PROMPT_NEEDS_SAY,
    BookingNode,
    BranchNode,
    CancelNode,
    ConversationNode,
    FieldError,
    Flow,
    FlowHeader,
    Node,
    RescheduleNode,
    WebhookNode,
)
from slotline.agent.flow.table import EDGE_FIELDS, Edge, edge_may_set, edges
from slotline.agent.flow.templates import TemplateError, template_variables
from slotline.providers.errors import ConfigError
from slotline.providers.llm.rules.extraction import parse_choices

_TEMPLATE_FIELDS = ("say", "prompt", "reprompt", "template", "to")
_NODE: TypeAdapter[Node] = TypeAdapter(Node)


@dataclass(frozen=True, slots=True)
class FlowProblem:
    node_id: str  # "" for the flow's own fields (start, intents, variables…)
    field: str  # dotted: "extractor", "conditions.0.goto", "intents.1.goto"
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = f"node {self.node_id!r}" if self.node_id else "flow"
        field = f", field {self.field!r}" if self.field else ""
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}{where}{field}: {self.message}"


class FlowInvalid(ConfigError):
    """A flow file with problems; ``problems`` lists every one."""

    def __init__(self, source: str, problems: list[FlowProblem]) -> None:
        first = problems[0]
        parts = ("nodes", first.node_id) if first.node_id else ()
        key = ".".join(p for p in (*parts, first.field) if p)
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(source, key or "flow", first.message + more)
        self.problems = problems


def read_flow_file(path: Path) -> object:
    """The YAML document in ``path``; ``FlowInvalid`` when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = FlowProblem("", "", f"cannot read: {exc.strerror}", str(path))
        raise FlowInvalid(str(path), [problem]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = FlowProblem("", "", f"not valid YAML: {exc}".replace("\n", " "), str(path))
        raise FlowInvalid(str(path), [problem]) from None


def load_flow(path: Path, *, booking_actions: Collection[str] | None = None) -> Flow:
    """Read, check and return the flow in ``path`` (``FlowInvalid`` lists every problem)."""
    return parse_flow(read_flow_file(path), booking_actions=booking_actions, source=str(path))


def parse_flow(
    flow_dict: object, *, booking_actions: Collection[str] | None = None, source: str = "<flow>"
) -> Flow:
    """The checked flow; ``booking_actions`` None skips the check of booking action names."""
    problems = validate(flow_dict, booking_actions=booking_actions, source=source)
    if problems:
        raise FlowInvalid(source, problems)
    return Flow.model_validate(flow_dict)


RULES_ONLY_WARNING = (
    "described in words, so only a model judges it: with llm.provider: rules it is always "
    "false and the flow goes on to the next condition"
)


PROMPT_WARNING = (
    "written by the model: with llm.provider: rules the node's `say` line is spoken instead"
)


def llm_warnings(flow: Flow, source: str = "") -> list[FlowProblem]:
    """Not problems but warnings: what behaves differently without a model. A described branch
    condition (``when``) and a ``prompt`` are valid in every flow (flows stay portable between
    providers), but with ``llm.provider: rules`` the condition never holds and the prompt's
    ``say`` line is spoken; ``slotline flow validate`` prints these."""
    found = [
        FlowProblem(node_id, f"conditions.{index}.when", RULES_ONLY_WARNING, source)
        for node_id, node in flow.nodes.items()
        if isinstance(node, BranchNode)
        for index, condition in enumerate(node.conditions)
        if condition.when is not None
    ]
    found += [
        FlowProblem(node_id, "prompt", PROMPT_WARNING, source)
        for node_id, node in flow.nodes.items()
        if getattr(node, "prompt", "").strip()
    ]
    return found


def validate(
    flow_dict: object, *, booking_actions: Collection[str] | None, source: str
) -> list[FlowProblem]:
    """Every problem in a flow document (see the module docstring); [] when it is sound."""
    checker = _Checker(source)
    checker.run(flow_dict, booking_actions)
    return checker.problems


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[FlowProblem] = []

    def add(self, node_id: str, field: str, message: str) -> None:
        self.problems.append(FlowProblem(node_id, field, message, self.source))

    def run(self, flow_dict: object, booking_actions: Collection[str] | None) -> None:
        if not isinstance(flow_dict, Mapping):
            self.add("", "", "a flow file must be a mapping with name, start and nodes")
            return
        header = self._header(flow_dict)
        raw_nodes = flow_dict.get("nodes")
        if not isinstance(raw_nodes, Mapping) or not raw_nodes:
            self.add("", "nodes", "required: a mapping of node id to node")
            return
        nodes: dict[str, Node] = {}
        all_edges: dict[str, tuple[Edge, ...]] = {}
        for node_id, raw in raw_nodes.items():
            node_id = str(node_id)
            if not re.fullmatch(NODE_ID_PATTERN, node_id):
                self.add(node_id, "", "a node id is a letter then letters, digits or _")
            node = self._node(node_id, raw)
            if node is not None:
                nodes[node_id] = node
                all_edges[node_id] = edges(node)
            else:
                all_edges[node_id] = _raw_edges(raw)
        for node_id, node_edges in all_edges.items():  # nodes that did not read cleanly too
            for edge in node_edges:
                if edge.target not in all_edges:
                    self.add(node_id, _edge_field(edge.key), f"no node named {edge.target!r}")
        if header is not None:
            self._header_in_flow(header, all_edges)
        sound = not self.problems  # every node read cleanly and every edge leads somewhere
        if header is not None and header.timezone:
            try:
                zoneinfo.ZoneInfo(header.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.add("", "timezone", f"{header.timezone!r} is not an IANA time zone")
        if booking_actions is not None:
            self._booking_actions(nodes, booking_actions)
        if header is None:
            return
        graph = Graph(header.start, tuple(i.goto for i in header.intents), nodes, all_edges)
        order = reachable_nodes(graph)
        for node_id in all_edges:
            if node_id not in order:
                self.add(node_id, "", f"unreachable: no path from start {header.start!r} or an "
                         "intent leads here")
        for node_id, key, cycle in instant_loops(graph, order):
            self.add(node_id, _edge_field(key),
                     "a loop that never waits for the caller: " + " → ".join(cycle))
        if sound:
            self._variables(header, graph, order)

    def _header(self, flow_dict: Mapping[Any, Any]) -> FlowHeader | None:
        fields = {k: v for k, v in flow_dict.items() if k != "nodes"}
        try:
            return FlowHeader.model_validate(fields)
        except ValidationError as exc:
            self._pydantic("", exc)
            return None

    def _node(self, node_id: str, raw: object) -> Node | None:
        if not isinstance(raw, Mapping):
            self.add(node_id, "", "a node must be a mapping of fields with a `type`")
            return None
        kind = raw.get("type")
        if kind is None:
            self.add(node_id, "type", f"required: one of {', '.join(NODE_MODELS)}")
            return None
        if str(kind) not in NODE_MODELS:
            self.add(node_id, "type", f"unknown node type {kind!r}; expected one of "
                     f"{', '.join(NODE_MODELS)}")
            return None
        prompted = bool(raw.get("prompt")) and not raw.get("say")
        if prompted:  # one clear message, not pydantic's bare "required"
            self.add(node_id, "say", PROMPT_NEEDS_SAY)
        try:
            node = _NODE.validate_python(raw)
        except ValidationError as exc:
            # the first location is the node type; "say" is reported above for a prompt node
            self._pydantic(node_id, exc, strip=1, skip="say" if prompted else "")
            return None
        for field, text in _templates(node):
            try:
                template_variables(text)
            except TemplateError as exc:
                self.add(node_id, field, str(exc))
        if isinstance(node, ConversationNode):
            self._choices(node_id, node)
        return node

    def _choices(self, node_id: str, node: ConversationNode) -> None:
        pairs = [("choices", node.choices)]
        if node.or_collect is not None:
            pairs.append(("or_collect.choices", node.or_collect.choices))
        for field, choices in pairs:
            try:
                parse_choices(choices)
            except ValueError as exc:
                self.add(node_id, field, str(exc))

    def _booking_actions(self, nodes: Mapping[str, Node], configured: Collection[str]) -> None:
        known = ", ".join(sorted(configured)) or "none"
        for node_id, node in nodes.items():
            if isinstance(node, BookingNode | RescheduleNode) and node.action:
                if node.action not in configured:
                    self.add(node_id, "action", f"booking action {node.action!r} is not "
                             f"configured (configured: {known})")

    def _header_in_flow(self, header: FlowHeader, all_edges: Mapping[str, object]) -> None:
        if header.start not in all_edges:
            self.add("", "start", f"no node named {header.start!r}")
        for index, intent in enumerate(header.intents):
            if intent.goto not in all_edges:
                self.add("", f"intents.{index}.goto", f"no node named {intent.goto!r}")

    def _variables(self, header: FlowHeader, graph: Graph, order: list[str]) -> None:
        base = frozenset(header.initial_variables())
        must = must_available(graph, order, base)
        may = may_available(graph, order, base)
        collectors: dict[str, list[str]] = {}
        for node_id, node in graph.nodes.items():
            for edge in edges(node):
                for variable in edge_may_set(node, edge.key):
                    collectors.setdefault(variable, [])
                    if node_id not in collectors[variable]:
                        collectors[variable].append(node_id)
        for node_id in order:
            node = graph.nodes[node_id]
            for field, variable, surely in _uses(node):
                if variable in must.get(node_id, base):
                    continue
                if not surely and variable in may.get(node_id, base):
                    continue
                self.add(node_id, field, self._unavailable(graph, variable, node_id, may,
                                                           collectors.get(variable, [])))

    def _unavailable(
        self,
        graph: Graph,
        variable: str,
        node_id: str,
        may: Mapping[str, frozenset[str]],
        collectors: list[str],
    ) -> str:
        if not collectors:
            return (f"unknown variable {variable!r}: no node collects it and it has no default "
                    "in `variables`")
        if variable not in may.get(node_id, frozenset()):
            return (f"variable {variable!r} is used before any node collects it "
                    f"(collected by: {', '.join(collectors)})")
        path = "".join(
            (f" →({key}) " if key not in ("", "next") else " → " if key else "") + step
            for step, key in path_without(graph, variable, node_id)
        )
        return (f"variable {variable!r} is not collected on every path to here, e.g. {path}; "
                "collect it on that path or give it a default in `variables`")

    def _pydantic(
        self, node_id: str, exc: ValidationError, strip: int = 0, skip: str = ""
    ) -> None:
        for error in exc.errors(include_url=False):
            loc = [str(part) for part in error["loc"][strip:]]
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):
                loc = [*loc, cause.field] if cause.field else loc
                message = str(cause)
            else:
                message = _message(error, loc[-1] if loc else "value")
            if skip and loc == [skip]:
                continue
            self.add(node_id, ".".join(loc), message)


def _message(error: Mapping[str, Any], field: str) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"{given!r} is not a known {field}; expected {error['ctx']['expected']}"
    if kind == "string_pattern_mismatch":
        return f"{given!r} is not allowed here (must match {error['ctx']['pattern']})"
    if isinstance(given, str | int | float):
        return f"{error['msg']} (got {given!r})"
    return str(error["msg"])


def _templates(node: Node) -> Iterator[tuple[str, str]]:
    for field in _TEMPLATE_FIELDS:
        text = getattr(node, field, None)
        if isinstance(text, str) and text:
            yield field, text


def _uses(node: Node) -> Iterator[tuple[str, str, bool]]:
    """(field, variable, must it surely be set) for every variable the node reads."""
    for field, text in _templates(node):
        for variable in template_variables(text):
            yield field, variable, True
    if isinstance(node, BranchNode):
        for index, condition in enumerate(node.conditions):
            if condition.variable is None:
                continue  # described in words: judged by the model, reads no variable
            surely = condition.test not in ("is_set", "is_not_set")
            yield f"conditions.{index}.variable", condition.variable, surely
    if isinstance(node, RescheduleNode | CancelNode):
        for field in ("reference_variable", "phone_variable"):
            variable = getattr(node, field)
            if variable is not None:
                yield field, variable, False  # either lookup may be missing; one is enough
    if isinstance(node, WebhookNode):
        for variable in node.send:
            yield "send", variable, True


def _edge_field(key: str) -> str:
    if key.startswith("if:"):
        return f"conditions.{key[3:]}.goto"
    return key


def _raw_edges(raw: object) -> tuple[Edge, ...]:
    """Best-effort edges of a node that did not read cleanly, so its successors still count as
    reachable and no follow-on "unreachable" reports appear."""
    if not isinstance(raw, Mapping):
        return ()
    names = {name for fields in EDGE_FIELDS.values() for name in fields}
    found = [Edge(n, n, raw[n]) for n in sorted(names) if isinstance(raw.get(n), str)]
    conditions = raw.get("conditions")
    if isinstance(conditions, list):
        for index, condition in enumerate(conditions):
            if isinstance(condition, Mapping) and isinstance(condition.get("goto"), str):
                found.append(Edge(f"if:{index}", "", condition["goto"]))
    return tuple(found)
