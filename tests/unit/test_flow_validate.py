"""Flow validation: every kind of problem, reported with its node id and field, all at once."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from slotline.agent.flow import FlowInvalid, FlowProblem, load_flow, parse_flow, validate
from slotline.providers.errors import ConfigError

GOOD: dict[str, Any] = {
    "name": "good",
    "start": "greet",
    "intents": [{"phrases": ["cancel my appointment"], "goto": "bye"}],
    "nodes": {
        "greet": {"type": "greeting", "say": "Hi.", "next": "ask_name"},
        "ask_name": {"type": "conversation", "say": "Name?", "collect": "user_name",
                     "extractor": "name", "next": "book", "fallback": "bye"},
        "book": {"type": "booking", "action": "demo", "success": "done", "failure": "bye"},
        "done": {"type": "end_call", "say": "Booked, {user_name}, {booked_date}."},
        "bye": {"type": "end_call", "say": "Goodbye."},
    },
}


def problems(document: object, actions: set[str] | None = None) -> list[tuple[str, str]]:
    found = validate(document, booking_actions={"demo"} if actions is None else actions,
                     source="f.yaml")
    return [(p.node_id, p.field) for p in found]


def messages(document: object) -> list[str]:
    return [str(p) for p in validate(document, booking_actions={"demo"}, source="f.yaml")]


def edited(**nodes: Any) -> dict[str, Any]:
    document = copy.deepcopy(GOOD)
    for node_id, node in nodes.items():
        if node is None:
            del document["nodes"][node_id]
        else:
            document["nodes"][node_id] = node
    return document


def test_the_good_flow_has_no_problems() -> None:
    assert validate(GOOD, booking_actions={"demo"}, source="f.yaml") == []


def test_unknown_node_type() -> None:
    document = edited(greet={"type": "greting", "say": "Hi.", "next": "ask_name"})
    assert problems(document) == [("greet", "type")]
    assert "unknown node type 'greting'; expected one of greeting, message" in messages(document)[0]


def test_missing_type_and_not_a_mapping() -> None:
    document = edited(greet={"say": "Hi.", "next": "ask_name"}, bye="Goodbye.")
    assert problems(document) == [("greet", "type"), ("bye", "")]


def test_missing_required_field_and_unknown_field() -> None:
    ask = {"type": "conversation", "say": "Name?", "extractor": "name", "next": "book",
           "fallbak": "bye"}
    document = edited(ask_name=ask)
    assert problems(document) == [("ask_name", "collect"), ("ask_name", "fallbak")]
    assert messages(document) == [
        "f.yaml: node 'ask_name', field 'collect': required",
        "f.yaml: node 'ask_name', field 'fallbak': unknown field",
    ]


def test_bad_extractor_kind() -> None:
    document = edited(ask_name={**GOOD["nodes"]["ask_name"], "extractor": "fullname"})
    assert problems(document) == [("ask_name", "extractor")]
    assert "'fullname' is not a known extractor; expected 'text', 'name'" in messages(document)[0]


def test_choice_needs_choices_and_only_choice_takes_them() -> None:
    ask = {**GOOD["nodes"]["ask_name"], "extractor": "choice"}
    assert problems(edited(ask_name=ask)) == [("ask_name", "choices")]
    ask = {**GOOD["nodes"]["ask_name"], "choices": ["a", "b"]}
    assert problems(edited(ask_name=ask)) == [("ask_name", "choices")]
    ask = {**GOOD["nodes"]["ask_name"], "extractor": "choice", "choices": ["ok", "|x"]}
    assert problems(edited(ask_name=ask)) == [("ask_name", "choices")]


def test_edges_to_missing_nodes() -> None:
    document = edited(ask_name={**GOOD["nodes"]["ask_name"], "fallback": "human"},
                      book={**GOOD["nodes"]["book"], "failure": "sorry"})
    document["start"] = "hello"
    document["intents"][0]["goto"] = "cancel"
    found = problems(document)
    assert ("ask_name", "fallback") in found and ("book", "failure") in found
    assert ("", "start") in found and ("", "intents.0.goto") in found
    assert "f.yaml: node 'book', field 'failure': no node named 'sorry'" in messages(document)


def test_branch_condition_edges_and_tests() -> None:
    branch = {"type": "branch", "default": "bye", "conditions": [
        {"variable": "user_name", "equals": "x", "goto": "nowhere"},
        {"variable": "user_name", "equals": "x", "is_set": True, "goto": "done"},
    ]}
    document = edited(route=branch, ask_name={**GOOD["nodes"]["ask_name"], "next": "route"})
    found = problems(document)
    assert ("route", "conditions.1") in found
    document["nodes"]["route"]["conditions"].pop()
    assert problems(document) == [("route", "conditions.0.goto"), ("book", ""), ("done", "")]


def test_unreachable_node() -> None:
    document = edited(orphan={"type": "message", "say": "Nobody gets here.", "next": "bye"})
    assert problems(document) == [("orphan", "")]
    assert "unreachable: no path from start 'greet'" in messages(document)[0]


def test_booking_action_not_configured() -> None:
    assert problems(GOOD, actions={"sales"}) == [("book", "action")]
    assert "booking action 'demo' is not configured (configured: sales)" in str(
        validate(GOOD, booking_actions={"sales"}, source="f.yaml")[0]
    )


def test_unknown_variable_in_a_template() -> None:
    document = edited(bye={"type": "end_call", "say": "Bye {user_nmae}."})
    assert problems(document) == [("bye", "say")]
    assert "unknown variable 'user_nmae': no node collects it" in messages(document)[0]


def test_variable_used_before_it_is_collected() -> None:
    greet = {"type": "greeting", "say": "Hi {user_name}.", "next": "ask_name"}
    document = edited(greet=greet)
    assert problems(document) == [("greet", "say")]
    assert "used before any node collects it (collected by: ask_name)" in messages(document)[0]


def test_variable_not_collected_on_every_path() -> None:
    ask = {**GOOD["nodes"]["ask_name"], "fallback": "book"}  # skipping the name reaches `done`
    document = edited(ask_name=ask)
    assert problems(document) == [("done", "say")]
    assert ("not collected on every path to here, e.g. greet → ask_name →(fallback) book "
            "→(success) done") in messages(document)[0]


def test_defaults_and_agent_name_are_available_everywhere() -> None:
    document = edited(
        greet={"type": "greeting", "say": "Hi, {agent_name} for {company}.", "next": "ask_name"}
    )
    assert problems(document) == [("greet", "say"), ("greet", "say")]
    document |= {"agent_name": "Ava", "variables": {"company": "Acme"}}
    assert problems(document) == []


def test_booking_outputs_only_on_the_success_edge() -> None:
    document = edited(bye={"type": "end_call", "say": "Bye. {booked_time}"})
    assert problems(document) == [("bye", "say")]


def test_intent_targets_only_see_what_every_waiting_node_has() -> None:
    document = copy.deepcopy(GOOD)
    document["intents"][0]["goto"] = "done"  # the intent can fire while the name is asked
    assert [m.split(": ", 2)[2][:22] for m in messages(document)] == [
        "variable 'user_name' i", "variable 'booked_date'"
    ]


def test_branch_tests_on_maybe_set_variables() -> None:
    condition: dict[str, Any] = {"variable": "user_email", "is_set": True, "goto": "book"}
    branch = {"type": "branch", "default": "bye", "conditions": [condition]}
    ask_email = {"type": "conversation", "say": "Email?", "collect": "user_email",
                 "extractor": "email", "optional": True, "next": "route"}
    document = edited(ask_name={**GOOD["nodes"]["ask_name"], "next": "ask_email"},
                      ask_email=ask_email, route=branch)
    assert problems(document) == []  # is_set on a variable some path collects is fine
    del condition["is_set"]
    condition["equals"] = "x"
    assert problems(edited(**document["nodes"])) == [("route", "conditions.0.variable")]


def test_lookup_and_webhook_variables() -> None:
    cancel = {"type": "cancel", "success": "bye"}
    assert problems(edited(book=None, cancel=cancel, done=None,
                           ask_name={**GOOD["nodes"]["ask_name"], "next": "cancel"})) == [
        ("cancel", "reference_variable")
    ]
    cancel["phone_variable"] = "user_phone"
    assert problems(edited(book=None, cancel=cancel, done=None,
                           ask_name={**GOOD["nodes"]["ask_name"], "next": "cancel"})) == [
        ("cancel", "phone_variable")
    ]
    hook = {"type": "webhook", "webhook": "crm", "send": ["user_email"], "success": "book"}
    document = edited(hook=hook, ask_name={**GOOD["nodes"]["ask_name"], "next": "hook"})
    assert problems(document) == [("hook", "send")]


def test_malformed_templates() -> None:
    document = edited(bye={"type": "end_call", "say": "Bye {user_name.upper} {"})
    assert problems(document) == [("bye", "say")]
    document = edited(bye={"type": "end_call", "say": "Bye {user_name!r}."})
    assert "{user_name!r} is not a variable" in messages(document)[0]


def test_loop_that_never_waits() -> None:
    document = edited(
        greet={"type": "greeting", "say": "Hi.", "next": "again"},
        again={"type": "jump", "goto": "greet"},
        ask_name=None, book=None, done=None,
    )
    assert problems(document) == [("again", "goto")]
    assert "a loop that never waits for the caller: greet → again → greet" in messages(document)[0]


def test_flow_fields_and_ids() -> None:
    document = copy.deepcopy(GOOD)
    del document["name"]
    document |= {"timezone": "Mars/Olympus", "colour": "blue", "intents": [{"goto": "bye"}]}
    document["nodes"]["bad id"] = {"type": "end_call"}
    found = problems(document)
    assert ("", "name") in found and ("", "colour") in found and ("", "intents.0.phrases") in found
    assert ("bad id", "") in found
    document["name"] = "x"
    del document["colour"]
    document["intents"] = []
    del document["nodes"]["bad id"]
    assert problems(document) == [("", "timezone")]


def test_transfer_number_and_limits() -> None:
    document = edited(bye={"type": "transfer", "number": "555-0100"},
                      ask_name={**GOOD["nodes"]["ask_name"], "max_attempts": 0})
    assert problems(document) == [("ask_name", "max_attempts"), ("bye", "number")]


def test_not_a_flow_at_all() -> None:
    assert problems(["a", "list"]) == [("", "")]
    assert problems({"name": "x", "start": "a"}) == [("", "nodes")]


def test_every_problem_is_reported_in_one_pass() -> None:
    document = edited(
        greet={"type": "greting", "say": "Hi.", "next": "ask_name"},
        ask_name={**GOOD["nodes"]["ask_name"], "extractor": "nme", "fallback": "human"},
        book={**GOOD["nodes"]["book"], "failure": "sorry", "action": "demo2"},
    )
    assert problems(document) == [
        ("greet", "type"), ("ask_name", "extractor"),
        ("ask_name", "fallback"), ("book", "failure"),  # a node that did not read is still checked
        ("book", "action"),
    ]


def test_parse_and_load_raise_config_errors_listing_every_problem(tmp_path: Path) -> None:
    document = edited(greet={"type": "greting", "next": "ask_name"},
                      bye={"type": "end_call", "say": "{nope!s}"})
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document, source="f.yaml")
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).startswith(
        "f.yaml: nodes.greet.type: unknown node type 'greting'; expected one of greeting, "
    )
    assert str(caught.value).endswith("end_call (and 1 more problems)")
    assert [(p.node_id, p.field, p.source) for p in caught.value.problems] == [
        ("greet", "type", "f.yaml"), ("bye", "say", "f.yaml")
    ]
    assert isinstance(caught.value.problems[0], FlowProblem)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(FlowInvalid, match="not valid YAML"):
        load_flow(broken)
    with pytest.raises(FlowInvalid, match="cannot read"):
        load_flow(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text("name: tiny\nstart: bye\nnodes:\n  bye: {type: end_call, say: Bye.}\n")
    assert load_flow(good, booking_actions=set()).nodes["bye"].type == "end_call"


def test_yaml_scalars_become_text() -> None:
    document = edited(route={"type": "branch", "default": "bye", "conditions": [
        {"variable": "booking_success", "equals": True, "goto": "done"}]})
    document["nodes"]["book"]["success"] = "route"
    document["nodes"]["done"]["say"] = "Booked."
    flow = parse_flow(document, booking_actions={"demo"})
    route = flow.nodes["route"]
    assert route.type == "branch" and route.conditions[0].equals == "yes"
