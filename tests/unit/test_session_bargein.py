"""Barge-in that forgives (issue 12, lever 3), through the real server and the simulated caller:
a backchannel over the agent clears its audio at once, and since its words are only an
acknowledgement the agent picks up again from the first unheard sentence. The server, the
recogniser and the scripted responder are ``tests.unit.session_rig``'s."""

from __future__ import annotations

import pytest

from slotline.agent.sim.demo import caller_wav
from slotline.providers.stt.local import LocalSpeechToText
from tests.unit.session_rig import assert_forgiven_and_resumed, talk_over_the_greeting

pytestmark = pytest.mark.asyncio(loop_scope="module")  # shares the module's recogniser


async def test_a_backchannel_over_the_agent_pauses_it_and_the_agent_resumes(
    recognizer: LocalSpeechToText,
) -> None:
    greeting = "One two three four five six. Seven."
    uh_huh = caller_wav("backchannel").audio  # "uh huh", as soon as the greeting plays
    deps, report, record = await talk_over_the_greeting(recognizer, greeting, uh_huh)
    assert_forgiven_and_resumed(deps, report, record, greeting)
