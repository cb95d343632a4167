"""A request to hold on, said on its own: "wait", "hold on", "sorry, one moment", "give me a
second". Pure and cheap (a few dozen token comparisons).

The flow engine answers one at any question with a short acknowledgement and keeps waiting for
the answer (``agent.flow.engine``); the turn detector may end such a turn after the short
silence of a complete answer (``agent.flow.completeness``): nothing the caller adds can change
what the agent does next, and a caller who goes on talks over the acknowledgement, which then
stops like any interrupted reply.

Only the whole utterance counts: "hold on, can I change the day" carries a request of its own
and is left to the question (and "let me think" to a yes/no question's hedge when it is said
with more words).
"""

from __future__ import annotations

from .normalize import FILLERS, tokens

_REQUESTS = tuple(
    tuple(phrase.split())
    for phrase in sorted((
        "wait", "hold on", "hold", "hang on", "hold the line", "one moment", "one second",
        "one sec", "one minute", "a moment", "a second", "a sec", "a minute", "moment",
        "give me a second", "give me a sec", "give me a moment", "give me a minute",
        "give me one second", "give me one moment", "give me one minute", "bear with me",
        "let me check", "let me see", "let me think", "let me look", "let me find it",
        "let me get my calendar", "let me grab a pen",
    ), key=lambda p: -len(p.split()))  # the longest match first
)
# Said around a request without changing it.
_AROUND = FILLERS | frozenset((
    "sorry", "please", "just", "okay", "ok", "oh", "ah", "yeah", "um", "uh", "actually",
    "real", "quick", "quickly", "for", "me", "can", "you", "could", "would", "hmm",
))


def is_hold_request(text: str) -> bool:
    """Whether ``text`` is only a request to hold on (with courtesy words around it)."""
    toks = tokens(text)
    found = False
    i = 0
    while i < len(toks):
        match = next((r for r in _REQUESTS if tuple(toks[i:i + len(r)]) == r), None)
        if match is not None:
            found = True
            i += len(match)
        elif toks[i] in _AROUND:
            i += 1
        else:
            return False
    return found
