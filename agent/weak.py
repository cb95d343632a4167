"""Callbacks that do not keep their owner alive.

A part of a call that tells its owner about events (the speaker tells the live call that audio
started, the media socket tells the session of a bad message) points back at the object that
holds it when it is given a bound method: the two become a reference cycle. Reference counting
cannot free a cycle; only the garbage collector's scans can, and for the objects of a call that
lasted minutes that is a full scan of every tracked object, the stall of the event loop
``agent.server.heap`` measures. Given ``weak_method(owner.method)`` instead, the part calls the
method while the owner lives, and an ended call is freed the moment its last task lets go of it
(``tests/unit/test_call_freed.py`` holds every call to that).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def weak_method(method: Callable[P, R]) -> Callable[P, R]:
    """``method``, a bound method, called through a weak reference to its object. Called after
    the object is gone it raises ``ReferenceError``: its owner outlived by a part it owns is a
    bug to see, not to skip."""
    ref = weakref.WeakMethod(method)
    name = method.__qualname__

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = ref()
        if bound is None:
            raise ReferenceError(f"{name} called after its object was freed")
        result: R = bound(*args, **kwargs)
        return result

    return call
