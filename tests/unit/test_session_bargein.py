"""Barge-in that forgives (issue 12, lever 3), through the real server and the simulated caller:
a backchannel over the agent clears its audio at once, and since its words are only an
acknowledgement the agent picks up again from the first unheard sentence. The server, the
recogniser and the scripted responder are ``test_session_turns``'s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from slotline.agent.call.responder import Action, CallEvent, CallStarted, Hangup, Say
from slotline.agent.sim.demo import caller_wav
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.test_session_turns import Scripted, call, deps_for, now_say, recognizer

pytestmark = pytest.mark.asyncio(loop_scope="module")  # shares the module's recogniser
__all__ = ["recognizer"]  # the fixture, imported to be found here


async def test_a_backchannel_over_the_agent_pauses_it_and_the_agent_resumes(
    recognizer: LocalSpeechToText,
) -> None:
    greeting = "One two three four five six. Seven."

    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallStarted):
            yield Say(greeting)
            yield Hangup()
        else:
            raise AssertionError(f"the responder must not hear {event}")

    deps = deps_for(recognizer, Scripted(handler))
    uh_huh = caller_wav("backchannel").audio  # "uh huh", as soon as the greeting plays
    report, record = await call(deps, [now_say(uh_huh, interrupt_after_ms=0)])
    assert report.clears == 1 and deps.metrics.bargein.count == 1  # cleared at once
    assert deps.metrics.false_interruptions.value == 1  # ... and forgiven
    cut, resumed = report.agent_turns
    assert cut.interrupted and not resumed.interrupted
    assert resumed.audio.startswith(cut.audio)  # from the first unheard sentence
    (turn,) = record.turns  # "uh huh" is not a caller turn
    assert turn.role == "agent" and turn.text == greeting
    assert not turn.interrupted and turn.resumed == 1
    assert report.closed_by == "server" and record.status == "completed"
