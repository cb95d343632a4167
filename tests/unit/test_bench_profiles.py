"""Latency profiles and scripted conversations: built-ins, YAML files, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slotline.agent.bench.conversation import load_conversation
from slotline.agent.bench.profiles import BUILTIN, Profile, load_profile
from slotline.agent.sim.caller import PressDigit, Speak
from slotline.providers.emulators import elevenlabs, openai
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.errors import ConfigError


def test_cloud_is_the_emulators_own_cloud_profile() -> None:
    cloud = BUILTIN["cloud"]
    deepgram = DeepgramEmulator.cloud()
    assert (cloud.stt.finalize_ms, cloud.stt.result_ms, cloud.stt.jitter_ms) == (
        deepgram.finalize_delay_s * 1000, deepgram.result_delay_s * 1000,
        deepgram.jitter_s * 1000)
    llm = openai.LATENCY_PROFILES["cloud"]
    assert (cloud.llm.first_token_ms, cloud.llm.token_interval_ms, cloud.llm.jitter_ms) == (
        llm.first_token_delay_ms, llm.token_interval_ms, llm.jitter_ms)
    tts = elevenlabs.LATENCY_PROFILES["cloud"]
    assert (cloud.tts.first_byte_ms, cloud.tts.chunk_interval_ms, cloud.tts.jitter_ms) == (
        tts.first_byte_delay_ms, tts.chunk_interval_ms, tts.jitter_ms)
    assert BUILTIN["instant"].stt.finalize_ms == 0 and not BUILTIN["real"].emulated


def test_yaml_profiles_round_trip_and_missing_values_are_zero(tmp_path: Path) -> None:
    path = tmp_path / "slow-llm.yaml"
    path.write_text(yaml.safe_dump({"llm": {"first_token_ms": 800, "jitter_ms": 100}}))
    profile = load_profile(str(path))
    assert profile.name == "slow-llm" and profile.llm.first_token_ms == 800.0
    assert profile.stt.finalize_ms == 0.0 and profile.emulated
    assert Profile.from_dict(BUILTIN["cloud"].as_dict()) == BUILTIN["cloud"]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"stt": {"finalize": 1}}, "stt.finalize"),
        ({"tts": {"first_byte_ms": -5}}, "tts.first_byte_ms"),
        ({"llm": {"first_token_ms": "fast"}}, "llm.first_token_ms"),
        ({"vendors": {}}, "vendors"),
        ({"stt": [150]}, "stt"),
    ],
)
def test_bad_profiles_name_the_key(tmp_path: Path, data: object, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_profile(str(path))
    assert caught.value.key == key and caught.value.source == str(path)


def test_unknown_profile_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="instant, cloud, real"):
        load_profile("warp-speed")


def test_conversations_built_in_and_from_yaml(tmp_path: Path) -> None:
    booking = load_conversation("booking")
    assert len(booking.steps) == 6
    first = booking.steps[0]
    assert isinstance(first, Speak) and first.interrupt_after_ms == 2500
    short = load_conversation("short")
    assert [getattr(s, "interrupt_after_ms", None) for s in short.steps] == [1000, 500]

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump([{"say": "yes", "pause_ms": 100},
                                    {"dtmf": "5"}, {"say": "no", "interrupt_after_ms": 400}]))
    mine = load_conversation(str(path))
    assert mine.name == "mine" and len(mine.steps) == 3
    assert isinstance(mine.steps[0], Speak) and mine.steps[0].pause_ms == 100
    assert mine.steps[1] == PressDigit("5")
    for bad, key in (([{"say": "nonexistent"}], "nonexistent"), ([{"dtmf": "55"}], "dtmf"),
                     ([{"say": "yes", "loud": True}], "loud"), ({"say": "yes"}, "(top)")):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError) as caught:
            load_conversation(str(path))
        assert caught.value.key == key
