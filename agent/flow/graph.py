"""A flow drawn as Mermaid or Graphviz DOT text, from :func:`agent.flow.table.edges` — the same
edges the engine follows — plus a dotted edge from "any time" to each global intent's node, and
one to the do-not-call hang-up every flow has without declaring it (``agent.flow.engine``)."""

from __future__ import annotations

from slotline.agent.flow.model import (
    BookingNode,
    CancelNode,
    ConversationNode,
    Flow,
    JumpNode,
    Node,
    RescheduleNode,
    SendSmsNode,
    TransferNode,
    WebhookNode,
)
from slotline.agent.flow.state import DO_NOT_CALL
from slotline.agent.flow.table import edges

_OPT_OUT_LABEL = "do-not-call request"
_OPT_OUT_DETAIL = f"opt out, hang up ({DO_NOT_CALL})"

# Mermaid shape brackets per node type: what the caller does there reads at a glance.
_MERMAID_SHAPES: dict[str, tuple[str, str]] = {
    "conversation": ("[/", "/]"),
    "branch": ("{", "}"),
    "booking": ("[[", "]]"),
    "reschedule": ("[[", "]]"),
    "cancel": ("[[", "]]"),
    "webhook": ("[[", "]]"),
    "transfer": ("([", "])"),
    "end_call": ("([", "])"),
}
_DOT_SHAPES = {
    "conversation": "parallelogram",
    "branch": "diamond",
    "booking": "component",
    "reschedule": "component",
    "cancel": "component",
    "webhook": "component",
    "transfer": "oval",
    "end_call": "oval",
}


def detail(node: Node) -> str:
    """One line saying what the node does, under its id in a diagram (a node whose line the
    model writes says so)."""
    what = _what(node)
    return f"{what}, line by the model" if getattr(node, "prompt", "").strip() else what


def _what(node: Node) -> str:
    if isinstance(node, ConversationNode):
        also = f" or {node.or_collect.variable}" if node.or_collect else ""
        return f"collect {node.collect}{also} ({node.extractor})"
    if isinstance(node, BookingNode):
        return f"book with {node.action}" + (", confirm" if node.confirm else "")
    if isinstance(node, RescheduleNode):
        return "reschedule" + (f" with {node.action}" if node.action else "")
    if isinstance(node, CancelNode):
        return "cancel booking"
    if isinstance(node, WebhookNode):
        return f"custom action {node.webhook}"
    if isinstance(node, TransferNode):
        return f"transfer to {node.number}"
    if isinstance(node, SendSmsNode):
        return "send SMS"
    if isinstance(node, JumpNode):
        return f"jump to {node.goto}"
    return node.type


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def mermaid(flow: Flow) -> str:
    """``flowchart TD`` text; node ids are prefixed (Mermaid reserves words such as ``end``)."""
    lines = ["flowchart TD", '    call_start(("call"))']
    for node_id, node in flow.nodes.items():
        left, right = _MERMAID_SHAPES.get(node.type, ("[", "]"))
        label = _mermaid_text(f"{node_id}<br/>{detail(node)}")
        lines.append(f'    n_{node_id}{left}"{label}"{right}')
    lines.append(f"    call_start --> n_{flow.start}")
    for node_id, node in flow.nodes.items():
        for edge in edges(node):
            lines.append(f'    n_{node_id} -->|"{_mermaid_text(edge.label)}"| n_{edge.target}')
    lines.append('    any_time(("any time"))')
    for intent in flow.intents:
        said = _mermaid_text(" / ".join(intent.phrases or intent.keywords))
        lines.append(f'    any_time -.->|"{said}"| n_{intent.goto}')
    lines.append(f'    do_not_call(["{_OPT_OUT_DETAIL}"])')  # never an n_ id: no clash
    lines.append(f'    any_time -.->|"{_OPT_OUT_LABEL}"| do_not_call')
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(flow: Flow) -> str:
    """Graphviz DOT text for ``dot -Tsvg`` / ``-Tpng``."""
    lines = [
        f'digraph "{_dot_text(flow.name)}" {{',
        '    rankdir=TB; node [shape=box, fontname="Helvetica"]; edge [fontname="Helvetica"];',
        '    "call start" [shape=circle, label="call"];',
    ]
    for node_id, node in flow.nodes.items():
        label = f"{_dot_text(node_id)}\\n{_dot_text(detail(node))}"
        shape = _DOT_SHAPES.get(node.type, "box")
        lines.append(f'    "{node_id}" [shape={shape}, label="{label}"];')
    lines.append(f'    "call start" -> "{flow.start}";')
    for node_id, node in flow.nodes.items():
        for edge in edges(node):
            lines.append(f'    "{node_id}" -> "{edge.target}" [label="{_dot_text(edge.label)}"];')
    lines.append('    "any time" [shape=circle];')
    for intent in flow.intents:
        said = _dot_text(" / ".join(intent.phrases or intent.keywords))
        lines.append(f'    "any time" -> "{intent.goto}" [style=dashed, label="{said}"];')
    # a name with spaces: never a node id (those are letters, digits and _)
    lines.append(f'    "do not call" [shape=oval, label="{_OPT_OUT_DETAIL}"];')
    lines.append(f'    "any time" -> "do not call" [style=dashed, label="{_OPT_OUT_LABEL}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
