from __future__ import annotations

from slotline.agent.call.playback import Playback, replies_of


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


def test_clear_returns_the_cut_chunks_in_sending_order_with_their_audio() -> None:
    pb = Playback()
    first, second = pb.new_reply(), pb.new_reply()
    heard = pb.chunk_sent(first, "Hello.", b"\x01" * 4)
    pb.chunk_sent(first, "Two.", b"\x02" * 4)
    pb.chunk_sent(second, "Three.", b"\x03" * 4)
    pb.mark_echoed(heard)
    assert first.audio[0] == b""  # heard audio is not kept
    cut = pb.cleared()
    assert [(c.reply, c.text, c.audio) for c in cut] == [
        (first, "Two.", b"\x02" * 4), (second, "Three.", b"\x03" * 4)]
    assert replies_of(cut) == [first, second]


def test_resumed_chunks_are_heard_under_fresh_marks() -> None:
    pb = Playback()
    reply = pb.new_reply()
    old = pb.chunk_sent(reply, "One.", b"a")
    (chunk,) = pb.cleared()
    Playback.resume([reply])
    assert not reply.cleared and reply.resumed == 1
    new = pb.resent(chunk)
    assert new != old and pb.playing
    assert pb.mark_echoed(old) is None  # Twilio's echo of the cleared mark changes nothing
    assert pb.mark_echoed(new) is reply
    assert reply.heard_text == "One." and reply.texts == ["One."]  # no repeat in the text
