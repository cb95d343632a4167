"""The flow graph (Mermaid/DOT from the engine's edge table), the `slotline flow` commands and
the shipped JSON Schema."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest

from slotline.agent.flow import load_flow
from slotline.agent.flow.cli import graph_command, validate_command
from slotline.agent.flow.graph import dot, mermaid
from slotline.agent.flow.model import NODE_MODELS, ExtractorKind, flow_json_schema
from slotline.agent.flow.schema import SCHEMA_PATH, schema_text
from slotline.agent.flow.table import EDGE_FIELDS, edges
from slotline.agent.flow.validate import read_flow_file
from slotline.providers.llm.rules import KINDS

FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows"
EXAMPLES = sorted(FLOWS.glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_mermaid_draws_every_edge_the_engine_follows(path: Path) -> None:
    flow = load_flow(path)
    text = mermaid(flow)
    assert text.startswith("flowchart TD\n")
    drawn = set(re.findall(r"^    n_(\w+) -->\|\"[^\"]*\"\| n_(\w+)$", text, re.MULTILINE))
    table = {(node_id, e.target) for node_id, node in flow.nodes.items() for e in edges(node)}
    assert drawn == table
    assert f"call_start --> n_{flow.start}" in text
    for intent in flow.intents:
        assert re.search(rf"any_time -\.->\|\"[^\"]+\"\| n_{intent.goto}$", text, re.MULTILINE)


def test_mermaid_survives_reserved_ids_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text('name: q\nstart: end\nnodes:\n  end: {type: end_call, say: "Say \\"bye\\""}\n')
    text = mermaid(load_flow(path))
    assert 'n_end(["end<br/>end_call"])' in text and "\n    end" not in text


def test_dot_has_every_node_and_edge() -> None:
    flow = load_flow(FLOWS / "multi_service.yaml")
    text = dot(flow)
    assert text.startswith('digraph "multi_service" {') and text.rstrip().endswith("}")
    for node_id, node in flow.nodes.items():
        assert f'"{node_id}" [shape=' in text
        for edge in edges(node):
            assert f'"{node_id}" -> "{edge.target}" [label="{edge.label}"];' in text
    assert '[shape=diamond, label="route\\nbranch"]' in text


def test_every_node_type_has_an_edge_rule_and_a_model() -> None:
    assert set(EDGE_FIELDS) == set(NODE_MODELS)
    for kind, fields in EDGE_FIELDS.items():
        assert set(fields) <= set(NODE_MODELS[kind].model_fields), kind


def test_extractor_kinds_match_the_rules_provider() -> None:
    assert typing.get_args(ExtractorKind) == KINDS


def test_shipped_schema_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "regenerate with: python -m slotline.agent.flow.schema"
    )


def test_schema_describes_every_example_node() -> None:
    """The examples against the schema (jsonschema is not installed: the properties and
    required fields of each node's definition are checked directly)."""
    schema = flow_json_schema()
    definitions = schema["$defs"]
    by_type = {
        definitions[name]["properties"]["type"]["const"]: definitions[name]
        for name in definitions if "type" in definitions[name].get("properties", {})
    }
    assert set(by_type) == set(NODE_MODELS)
    for path in EXAMPLES:
        document = read_flow_file(path)
        assert isinstance(document, dict)
        assert set(document) <= set(schema["properties"]) and set(schema["required"]) <= set(
            document
        )
        for node_id, node in document["nodes"].items():
            definition = by_type[node["type"]]
            assert set(node) <= set(definition["properties"]), (path.stem, node_id)
            assert set(definition["required"]) <= set(node), (path.stem, node_id)


def test_validate_command_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code = validate_command(FLOWS / "demo_booking.yaml", {"demo"})
    assert code == 0
    path = FLOWS / "demo_booking.yaml"
    assert capsys.readouterr().out == f"{path}: OK (flow 'demo_booking', 16 nodes)\n"


def test_validate_command_lists_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nstart: ask\nnodes:\n"
        "  ask: {type: conversation, say: 'Hi {who}', collect: x, extractor: nme, next: gone}\n"
        "  book: {type: booking, action: nope, success: ask}\n"
    )
    assert validate_command(path, {"demo"}) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: node 'ask', field 'extractor': 'nme' is not a known")
    assert out[1:] == [
        f"{path}: node 'ask', field 'next': no node named 'gone'",
        f"{path}: node 'book', field 'action': booking action 'nope' is not configured "
        "(configured: demo)",
        f"{path}: node 'book': unreachable: no path from start 'ask' or an intent leads here",
        f"{path}: 4 problems",
    ]


def test_validate_command_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_command(tmp_path / "none.yaml", set()) == 1
    assert "cannot read" in capsys.readouterr().out


def test_graph_command_mermaid_and_dot(capsys: pytest.CaptureFixture[str]) -> None:
    assert graph_command(FLOWS / "reschedule_cancel.yaml", "mermaid") == 0
    assert capsys.readouterr().out.startswith("flowchart TD\n")
    assert graph_command(FLOWS / "reschedule_cancel.yaml", "dot") == 0
    assert capsys.readouterr().out.startswith('digraph "reschedule_cancel"')


def test_graph_command_without_graphviz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `dot` anywhere
    assert graph_command(FLOWS / "demo_booking.yaml", "svg") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Graphviz `dot` is not on PATH" in captured.err


def test_graph_command_renders_through_dot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    fake = tmp_path / "dot"  # a stand-in Graphviz: echoes its format flag, then its input
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$1"\nexec /bin/cat\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert graph_command(FLOWS / "demo_booking.yaml", "png") == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b"-Tpng\ndigraph \"demo_booking\" {")


def test_graph_command_bad_format_and_bad_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert graph_command(FLOWS / "demo_booking.yaml", "jpeg") == 2
    assert "unknown graph format 'jpeg'" in capsys.readouterr().err
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nstart: a\nnodes:\n  a: {type: teleport}\n")
    assert graph_command(path, "mermaid") == 1
    assert "unknown node type 'teleport'" in capsys.readouterr().out


def test_schema_is_json_with_the_node_union() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    nodes = schema["properties"]["nodes"]["patternProperties"]
    [union] = nodes.values()
    assert len(union["oneOf"]) == len(NODE_MODELS)
