"""An ended call is freed by reference counting alone, never left to the garbage collector.

Objects that point at each other (a reference cycle) are freed only by the collector's scans,
and a call's objects live long enough to reach the oldest generation, whose scan walks every
tracked object of the process while the event loop waits (``agent.server.heap`` measures those
pauses). So no object of Slotline's may be part of a cycle once a call is over: callbacks into
an owner go through ``agent.weak``.

Each test runs with the collector off and ``gc.DEBUG_SAVEALL`` on: a collection afterwards puts
everything that only the collector could free into ``gc.garbage``, and no Slotline object may be
there. Objects of other libraries are not judged here (asyncio's own transports of Python 3.11
keep a bound method of themselves until closed and collected).
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from slotline.agent.call.responder import Action, CallerSaid, CallEvent, CallStarted, Hangup, Say
from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav
from slotline.agent.weak import weak_method
from slotline.providers.stt.local import LocalSpeechToText
from slotline.providers.telephony.twilio_media import Start
from tests.e2e.test_cloud_call import cloud_call_server
from tests.unit import session_rig as rig

pytestmark = pytest.mark.asyncio(loop_scope="module")


def ours(garbage: list[object]) -> Counter[str]:
    """The Slotline objects among ``garbage``, counted by type."""
    names = (f"{type(o).__module__}.{type(o).__qualname__}" for o in garbage)
    return Counter(name for name in names if name.startswith("slotline."))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors logged during the test: a weak callback called after its owner was freed raises
    ``ReferenceError`` in a task, and asyncio only logs that."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@contextmanager
def collector_off() -> Iterator[list[object]]:
    """Run the body with the collector off; yields the list that, after the body, holds what
    only a collection could free."""
    gc.collect()
    found: list[object] = []
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_a_call_with_a_forgiven_barge_in_leaves_no_cycle(
    recognizer: LocalSpeechToText, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole session: socket, floor, turn detector, frames, speaker, replies (held by the
    barge-in and resumed), the recogniser's stream and the caller's side."""
    greeting = "Hello there. This is the second sentence of the greeting."
    with collector_off() as garbage:
        deps, report, record = await rig.talk_over_the_greeting(
            recognizer, greeting, caller_wav("backchannel").audio)  # "uh huh"
        rig.assert_forgiven_and_resumed(deps, report, record, greeting)
        del deps, report, record
    assert not ours(garbage), ours(garbage)
    assert not errors(caplog)  # no callback found its owner gone


async def test_a_call_whose_reply_is_cut_by_words_leaves_no_cycle(
    recognizer: LocalSpeechToText, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply cancelled by the caller's words, and a turn answered after it."""
    wait = caller_wav("interrupt").audio  # "wait sorry hold on"

    async def handler(event: CallEvent) -> AsyncIterator[Action]:
        if isinstance(event, CallStarted):
            yield Say("Hello there. I will keep talking for a good while, so that you can "
                      "interrupt me. And one more sentence to be sure of it.")
        else:
            yield Say("Goodbye.")
            yield Hangup()

    with collector_off() as garbage:
        deps = rig.deps_for(recognizer, rig.Scripted(handler))
        report, record = await rig.call(deps, [rig.now_say(wait, interrupt_after_ms=300)])
        assert report.clears >= 1 and record.status == "completed"
        del deps, report, record
    assert not ours(garbage), ours(garbage)
    assert not errors(caplog)


async def test_the_served_responder_after_a_booking_leaves_no_cycle(tmp_path: Path) -> None:
    """What ``slotline serve`` builds per call (flow engine, booking runner, the caller's
    bookings, webhooks, waitlist), driven by text through a whole booking."""
    settings = load_settings(None, {"SLOTLINE_STORE__URL": f"sqlite:///{tmp_path}/s.db"})
    deps = await build_deps(settings, load_secrets({}))
    start = Start(1, "MZ1", "AC1", "CA-freed", ("inbound",), "audio/x-mulaw", 8000, 1, {})
    try:
        with collector_off() as garbage:
            responder = deps.make_responder(start)
            spoken: list[str] = []
            for event in (CallStarted("CA-freed", {}), CallerSaid("my name is john smith"),
                          CallerSaid("no thanks"), CallerSaid("next tuesday"),
                          CallerSaid("three p m"), CallerSaid("yes")):
                spoken += [a.text async for a in responder.handle(event) if isinstance(a, Say)]
            await responder.aclose()
            assert any("all set" in line for line in spoken), spoken
            del responder
        assert not ours(garbage), ours(garbage)
    finally:
        for resource in deps.resources:
            await resource.aclose()


async def test_a_weak_method_calls_while_its_object_lives_and_then_refuses() -> None:
    class Owner:
        def __init__(self) -> None:
            self.heard: list[int] = []

        def hear(self, value: int) -> int:
            self.heard.append(value)
            return value * 2

    owner = Owner()
    call = weak_method(owner.hear)
    assert call(21) == 42 and owner.heard == [21]
    del owner  # the callback alone does not keep it
    with pytest.raises(ReferenceError, match="Owner.hear"):
        call(1)


async def test_a_call_on_the_cloud_vendors_leaves_no_cycle() -> None:
    """The Deepgram, OpenAI and ElevenLabs adapters on their emulators (the emulators' own
    objects are the test's, not judged)."""
    async with cloud_call_server() as (runner, server, _, _):
        try:
            with collector_off() as garbage:
                report = await run_caller(server.media_url, [caller_wav(DEMO_SCRIPT[0].stem)])
                record = server.deps.call_log.get(report.call_sid)
                assert record is not None and record.errors == []
                assert record.variables["user_name"] == "John Smith"
                del report, record
        finally:
            await runner.cleanup()
    found = Counter({name: n for name, n in ours(garbage).items()
                     if not name.startswith("slotline.providers.emulators.")})
    assert not found, found
