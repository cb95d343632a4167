"""``--conversation llm``: the booking caller, and the flow whose every line the model writes."""

from __future__ import annotations

import argparse

import pytest

from slotline.agent.bench import args as bench_args
from slotline.agent.bench.cli import _options
from slotline.agent.bench.conversation import LLM_FLOW, load_conversation
from slotline.agent.flow import load_flow
from slotline.agent.flow.model import ConversationNode, EndCallNode, GreetingNode, MessageNode
from slotline.providers.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_args.add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_the_llm_conversation_is_the_booking_caller_on_a_flow_of_prompts() -> None:
    llm, booking = load_conversation("llm"), load_conversation("booking")
    assert llm.steps == booking.steps and booking.flow is None
    assert llm.server_env() == {"SLOTLINE_FLOW": str(LLM_FLOW)} and booking.server_env() == {}
    flow = load_flow(LLM_FLOW)
    spoken = [n for n in flow.nodes.values()
              if isinstance(n, GreetingNode | MessageNode | ConversationNode | EndCallNode)]
    assert spoken == list(flow.nodes.values())  # no booking node: its offers are fixed text
    assert all(node.prompt and node.say for node in spoken)


def test_the_option_reaches_the_options_and_booking_stays_the_default() -> None:
    assert _options(parse()).conversation.name == "booking"
    options = _options(parse("--conversation", "llm", "--profile", "cloud"))
    assert options.conversation.flow == LLM_FLOW
    assert options.profile.llm.first_token_ms == 300  # the goal numbers
    with pytest.raises(ConfigError, match="--target"):
        _options(parse("--conversation", "llm", "--target", "ws://127.0.0.1:9/ws"))
