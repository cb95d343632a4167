"""The bench emulator's transcript memo: exact repeats, near cuts, and loud real re-decodes."""

from __future__ import annotations

import numpy as np

from slotline.agent.bench.stt_memo import HEAD_BYTES, NEAR_BYTES, TranscriptMemo, key_of


def speech(seconds: float, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-3000, 3000, int(8000 * seconds), dtype=np.int16).tobytes()


SILENCE = bytes(3200)  # 0.1 s of digital silence


def test_exact_repeats_with_other_silence_around_them_hit() -> None:
    memo: TranscriptMemo[str] = TranscriptMemo()
    words = speech(1.5)
    assert memo.lookup(key_of(words)) == ("decode", None)
    memo.remember(key_of(words), "my name is john")
    assert memo.lookup(key_of(SILENCE + words + SILENCE * 5)) == ("hit", "my name is john")
    assert memo.counts == {"hit": 1, "near": 0, "decode": 1, "redecode": 0}


def test_a_cut_a_little_later_or_earlier_gets_the_known_words() -> None:
    memo: TranscriptMemo[str] = TranscriptMemo()
    words = speech(2.0)
    memo.remember(key_of(words), "tuesday at three")
    shorter = words[: len(words) - NEAR_BYTES + 2]  # a Finalize ~0.3 s early
    longer = words + speech(0.2, seed=2)  # ... or late, into the next noise
    assert memo.lookup(key_of(shorter)) == ("near", "tuesday at three")
    assert memo.lookup(key_of(longer)) == ("near", "tuesday at three")


def test_a_known_beginning_cut_far_away_is_a_counted_real_decode() -> None:
    memo: TranscriptMemo[str] = TranscriptMemo()
    words = speech(3.0)
    memo.remember(key_of(words), "the whole sentence")
    half = words[: HEAD_BYTES + 8000]  # a Finalize in the middle of the sentence
    assert memo.lookup(key_of(half)) == ("redecode", None)
    assert memo.lookup(key_of(speech(3.0, seed=9))) == ("decode", None)  # another utterance
    assert memo.counts["redecode"] == 1 and memo.counts["decode"] == 1


def test_oldest_entries_go_first() -> None:
    memo: TranscriptMemo[str] = TranscriptMemo(max_entries=2)
    spans = [speech(1.0, seed=s) for s in range(3)]
    for i, span in enumerate(spans):
        memo.remember(key_of(span), str(i))
    assert memo.lookup(key_of(spans[0])) == ("decode", None)  # forgotten, head too
    assert memo.lookup(key_of(spans[2])) == ("hit", "2")


def test_entries_load_into_a_new_memo_as_they_were() -> None:
    memo: TranscriptMemo[str] = TranscriptMemo()
    spans = [speech(2.0, seed=s) for s in range(3)]
    for i, span in enumerate(spans):
        memo.remember(key_of(span), str(i))
    warm: TranscriptMemo[str] = TranscriptMemo()
    warm.load(memo.entries())
    assert [warm.lookup(key_of(span)) for span in spans] == [("hit", "0"), ("hit", "1"),
                                                              ("hit", "2")]
    assert warm.lookup(key_of(spans[1][:-3000]))[0] == "near"  # the heads came along
    assert warm.entries() == memo.entries()


def test_the_same_words_after_more_or_less_quiet_lead_in_get_the_known_words() -> None:
    memo: TranscriptMemo[str] = TranscriptMemo()
    rng = np.random.default_rng(5)
    lead_in = rng.integers(-200, 200, 1600, dtype=np.int16).tobytes()  # 0.1 s, quiet
    words = speech(1.5)
    memo.remember(key_of(SILENCE + lead_in + words), "three p m")
    assert memo.lookup(key_of(lead_in + words)) == ("hit", "three p m")
    for cut in (640, 1920, len(lead_in)):  # the pre-roll began later in the lead-in
        assert memo.lookup(key_of(SILENCE + lead_in[cut:] + words)) == ("near", "three p m")
    assert memo.lookup(key_of(lead_in + speech(1.5, seed=3)))[0] == "decode"  # other words
