"""A request to hold on ("wait", "sorry, one moment"), said alone at any question: the agent
acknowledges it and goes on waiting where it was; the turn ends after the short silence of a
complete answer. With more words it is an answer (or a correction) like any other."""

from __future__ import annotations

import pytest

from slotline.agent.call.responder import CallerSaid, Say
from slotline.agent.flow import AvailabilityReady, Phase
from slotline.agent.flow.completeness import classify
from slotline.agent.flow.state import HOLD_ACK
from slotline.providers.llm.rules.hold import is_hold_request
from tests.unit.test_flow_opt_out import AT_10, AT_14, booking_engine, started

HOLDS = ("wait", "hold on", "wait sorry hold on", "wait sorry hold", "sorry one moment please",
         "can you give me a second", "uh just a sec", "hang on", "let me check",
         "okay let me get my calendar", "bear with me", "one second", "hold on a second")
NOT_HOLDS = ("hold on can i change the day", "wait tuesday", "no wait", "okay", "yes",
             "one", "three p m", "my name is john smith", "wait sorry actually wednesday",
             "", "sorry", "please")


@pytest.mark.parametrize("text", HOLDS)
def test_a_request_to_hold_said_alone(text: str) -> None:
    assert is_hold_request(text)


@pytest.mark.parametrize("text", NOT_HOLDS)
def test_other_words_are_not_one(text: str) -> None:
    assert not is_hold_request(text)


@pytest.mark.parametrize("kind", ["name", "date", "time", "yes_no", "email", "phone", ""])
def test_it_is_a_whole_turn_for_every_question(kind: str) -> None:
    assert classify(kind, "wait sorry hold on") == "complete"
    assert classify(kind, "sorry one moment") == "complete"
    assert classify(kind, "hold on can i") == "incomplete"  # the caller goes on


def test_at_a_question_it_is_acknowledged_and_the_question_still_waits() -> None:
    engine = started("demo_booking")
    at, phase = engine.node_id, engine.phase
    assert engine.handle(CallerSaid("wait sorry hold on")) == [Say(HOLD_ACK)]
    assert (engine.node_id, engine.phase) == (at, phase)
    engine.handle(CallerSaid("my name is john smith"))  # the answer, when it comes
    assert engine.variables["user_name"] == "John Smith"


def test_at_a_read_back_and_an_offer_nothing_is_lost() -> None:
    engine = booking_engine(AvailabilityReady("book", AT_10))
    assert engine.phase is Phase.CONFIRM
    assert engine.handle(CallerSaid("one second please")) == [Say(HOLD_ACK)]
    assert engine.phase is Phase.CONFIRM  # still asking "shall I book it?"

    engine = booking_engine(AvailabilityReady("book", None, (AT_10, AT_14)))
    assert engine.phase is Phase.CHOOSE
    assert engine.handle(CallerSaid("let me check")) == [Say(HOLD_ACK)]
    assert engine.phase is Phase.CHOOSE
    said = engine.handle(CallerSaid("the second one"))  # the offers are still the same two
    assert said[0] == Say("I can book Tuesday, December 1st at 2 pm. Shall I go ahead?")


def test_it_does_not_count_as_a_failed_attempt() -> None:
    engine = started("demo_booking")
    for _ in range(5):  # more than any max_attempts: never the give-up fallback
        assert engine.handle(CallerSaid("hold on")) == [Say(HOLD_ACK)]
    assert engine.phase is Phase.ANSWER and not engine.ended
