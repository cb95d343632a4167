"""What each simulated caller says: scripted conversations of recorded speech.

Built in (recordings in ``agent/assets/caller``):

* ``booking`` (default): interrupts the greeting once 2.5 s of it has played ("wait sorry hold
  on": a scripted barge-in), then books like ``slotline demo`` (name, day, time, yes, no).
  About 45 s against Slotline's demo flow.
* ``short``: two barge-ins and one answered turn — the greeting interrupted after 1 s, then
  "my name is john smith" over the agent's reply after 0.5 s. A few seconds; for smoke runs.
* ``llm``: the caller of ``booking``, and a started Slotline runs ``agent/bench/llm_flow.yaml``
  instead of its own flow: every agent line is written by the model (``prompt:`` nodes) and
  streamed to speech clause by clause, so every turn waits on the model (with ``booking`` the
  rules answer every turn and the model is skipped). With ``--profile cloud`` the emulated
  model's first token comes after 300 ms, then one word every 20 ms.

Or a YAML file: a list of steps, each ``{say: STEM_OR_WAV, pause_ms:, interrupt_after_ms:}`` or
``{dtmf: DIGIT, pause_ms:}``; a ``say`` names a recording stem (``yes``) or a WAV path.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from slotline.agent.sim.caller import PressDigit, Speak, Step
from slotline.providers.errors import ConfigError

_ASSETS = "slotline.agent.assets.caller"


LLM_FLOW = Path(__file__).with_name("llm_flow.yaml")


@dataclass(frozen=True, slots=True)
class Conversation:
    name: str
    steps: tuple[Step, ...]
    flow: Path | None = None  # the flow a started Slotline runs (None: its configured one)

    def server_env(self) -> dict[str, str]:
        """Settings a started Slotline needs for this conversation."""
        return {} if self.flow is None else {"SLOTLINE_FLOW": str(self.flow)}


def recording(stem: str, *, pause_ms: int = 300, interrupt_after_ms: int | None = None) -> Speak:
    """One of the bundled caller recordings."""
    path = resources.files(_ASSETS).joinpath(f"{stem}.wav")
    if not path.is_file():
        raise ConfigError("conversation", stem, "no such recording in agent/assets/caller")
    with resources.as_file(path) as file:
        return Speak.from_wav(file, pause_ms=pause_ms, interrupt_after_ms=interrupt_after_ms)


def booking() -> Conversation:
    steps = (
        recording("interrupt", interrupt_after_ms=2500),
        # demo_booking's order: name, e-mail ("no thanks"), day, time, "yes" to the time
        *(recording(stem) for stem in ("name_john", "no", "day_tuesday", "time_3pm", "yes")),
    )
    return Conversation("booking", steps)


def short() -> Conversation:
    steps = (
        recording("interrupt", interrupt_after_ms=1000),
        recording("name_john", interrupt_after_ms=500),
    )
    return Conversation("short", steps)


def llm() -> Conversation:
    return Conversation("llm", booking().steps, flow=LLM_FLOW)


BUILTIN = {"booking": booking, "short": short, "llm": llm}


def load_conversation(spec: str) -> Conversation:
    if spec in BUILTIN:
        return BUILTIN[spec]()
    path = Path(spec)
    if not path.is_file():
        raise ConfigError("--conversation", spec,
                          f"not a built-in conversation ({', '.join(BUILTIN)}) nor a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "(file)", f"not valid YAML: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ConfigError(str(path), "(top)", "a conversation is a non-empty list of steps")
    return Conversation(path.stem, tuple(_step(item, str(path), i) for i, item in
                                         enumerate(data)))


def _int_or_none(item: dict[str, object], key: str, where: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(where, key, "must be a whole number of ms >= 0")
    return value


def _step(item: object, source: str, index: int) -> Step:
    where = f"{source}: step {index + 1}"
    if not isinstance(item, dict):
        raise ConfigError(where, "(step)", "must be a mapping with `say` or `dtmf`")
    unknown = sorted(set(item) - {"say", "dtmf", "pause_ms", "interrupt_after_ms"})
    if unknown:
        raise ConfigError(where, unknown[0], "unknown key")
    pause_ms = _int_or_none(item, "pause_ms", where)
    pause = 300 if pause_ms is None else pause_ms
    interrupt = _int_or_none(item, "interrupt_after_ms", where)
    if "dtmf" in item:
        try:
            return PressDigit(str(item["dtmf"]), pause_ms=pause, interrupt_after_ms=interrupt)
        except ValueError as exc:
            raise ConfigError(where, "dtmf", str(exc)) from None
    said = item.get("say")
    if not isinstance(said, str) or not said:
        raise ConfigError(where, "say", "must name a recording or a WAV file")
    if said.endswith(".wav"):
        wav = Path(source).parent / said
        if not wav.is_file():
            raise ConfigError(where, "say", f"no WAV file {said!r}")
        return Speak.from_wav(wav, pause_ms=pause, interrupt_after_ms=interrupt)
    return recording(said, pause_ms=pause, interrupt_after_ms=interrupt)
