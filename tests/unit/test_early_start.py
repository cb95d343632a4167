"""``EarlyStart``: when the session lets the responder start its model request on the settled
words of a pause."""

from __future__ import annotations

from slotline.agent.call.early_start import EarlyStart


class Responder:
    def __init__(self, *, accepts: bool = True) -> None:
        self.accepts = accepts
        self.log: list[str] = []

    def anticipate(self, text: str) -> bool:
        self.log.append(f"start {text}")
        return self.accepts

    def forget(self) -> None:
        self.log.append("forget")


def early(responder: Responder, after_ms: int = 100) -> EarlyStart:
    return EarlyStart(after_ms, responder.anticipate, responder.forget)


def frames(e: EarlyStart, voiced: bool, n: int) -> None:
    for _ in range(n):
        e.frame(voiced)


def test_a_pause_after_speech_starts_on_the_words_heard() -> None:
    r = Responder()
    e = early(r)
    frames(e, True, 10)
    e.heard("do you have parking", True)
    frames(e, False, 4)
    assert r.log == []  # 80 ms of silence: not yet
    frames(e, False, 1)
    assert r.log == ["start do you have parking"]
    frames(e, False, 20)
    assert r.log == ["start do you have parking"]  # once per pause


def test_speaking_again_forgets_it_and_the_next_pause_starts_again() -> None:
    r = Responder()
    e = early(r)
    frames(e, True, 5)
    e.heard("whenever my sister", True)
    frames(e, False, 5)
    frames(e, True, 5)
    e.heard("whenever my sister gets back", True)
    frames(e, False, 5)
    assert r.log == ["start whenever my sister", "forget", "start whenever my sister gets back"]


def test_late_words_in_the_same_pause_start_it_again_with_them() -> None:
    r = Responder()
    e = early(r)
    frames(e, True, 5)
    frames(e, False, 5)
    assert r.log == []  # no words yet: nothing to start
    e.heard("next", True)
    e.heard("next tuesday", True)
    e.heard("next tuesday", True)
    assert r.log == ["start next", "start next tuesday"]


def test_nothing_before_speech_nor_after_the_turn_ended() -> None:
    r = Responder()
    e = early(r)
    e.heard("stale words of the last turn", True)
    frames(e, False, 50)
    frames(e, True, 3)
    frames(e, False, 2)
    e.turn_ended()
    e.heard("the final words", True)
    frames(e, False, 50)
    assert r.log == []
    frames(e, True, 3)  # a new turn forgets the last turn's words until new ones come
    frames(e, False, 5)
    assert r.log == []


def test_a_refused_start_is_not_forgotten_later() -> None:
    r = Responder(accepts=False)  # e.g. the rules read the words: no model request
    e = early(r)
    frames(e, True, 5)
    e.heard("my name is john", True)
    frames(e, False, 5)
    frames(e, True, 1)
    assert r.log == ["start my name is john"]


def test_words_still_being_revised_start_nothing() -> None:
    r = Responder()
    e = early(r)
    frames(e, True, 10)
    e.heard("my name is john", False)  # an interim: it trails the caller
    frames(e, False, 10)
    assert r.log == []
    e.heard("my name is john smith", True)  # the pause's early finish
    assert r.log == ["start my name is john smith"]


def test_speech_unsettles_the_words_until_the_next_result() -> None:
    r = Responder()
    e = early(r)
    frames(e, True, 5)
    e.heard("on the", True)
    frames(e, True, 5)  # the caller went on before the pause was long enough
    frames(e, False, 10)
    assert r.log == []  # "on the" no longer covers what was said
    e.heard("on the fifth", True)
    assert r.log == ["start on the fifth"]
