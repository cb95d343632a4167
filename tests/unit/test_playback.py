from __future__ import annotations

from agent.playback import Playback


def test_marks_echoed_before_clear_are_heard() -> None:
    pb = Playback()
    reply = pb.new_reply()
    m1 = pb.chunk_sent(reply, "Hello there.")
    m2 = pb.chunk_sent(reply, "How can I help?")
    m3 = pb.chunk_sent(reply, "We are open today.")
    assert pb.playing
    assert pb.mark_echoed(m1) is reply
    pb.cleared()
    # Twilio echoes the pending marks right after a clear: they were not heard
    assert pb.mark_echoed(m2) is None and pb.mark_echoed(m3) is None
    assert reply.cleared and not pb.playing
    assert reply.heard_text == "Hello there."
    assert reply.unheard_text == "How can I help? We are open today."


def test_all_heard_without_clear() -> None:
    pb = Playback()
    reply = pb.new_reply()
    names = [pb.chunk_sent(reply, t) for t in ("A.", "B.")]
    for n in names:
        pb.mark_echoed(n)
    assert reply.heard_text == "A. B." and not reply.cleared
    assert pb.mark_echoed("unknown") is None
