"""``slotline bench --conversation llm`` end to end, in the smoke test's style: a short run
against a Slotline it starts (in-process, vendors on their emulators), where every agent line
is written by the emulated model. Checked: the model was asked for the lines, the turns matched
in the call log waited on it, the report is complete; not timing budgets."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from slotline.agent.bench.report import validate
from slotline.agent.cli import main

FIRST_TOKEN_MS = 100  # the emulated model's only delay


def test_llm_conversation_has_the_model_write_every_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    profile = tmp_path / "model.yaml"
    profile.write_text(f"name: model\nllm: {{first_token_ms: {FIRST_TOKEN_MS}}}\n")
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["bench", "--calls", "1", "--duration", "9", "--ramp", "0",
                       "--profile", str(profile), "--conversation", "llm",
                       "--server", "inprocess", "--out", str(out)])
    assert status == 0
    result = json.loads((out / "result.json").read_text())
    assert validate(result) == [] and result["config"]["conversation"] == "llm"
    assert result["calls"]["failed"] == result["calls"]["dropped"] == 0
    assert result["errors"]["count"] == 0
    # the greeting and the question after it are two lines, each its own model request;
    # the booking conversation's greeting asks the model nothing
    assert result["vendors"]["llm_requests"] >= 2
    turns = result["turns"]
    assert turns["answered"] >= 1 and turns["bargein_cleared"] == turns["bargein"] >= 1
    assert result["latency"]["caller"]["turn_latency_ms"]["count"] == turns["answered"]
    # the turns are reported like any other; each one found in the call log waited on the
    # model (a turn whose first audio was a filler has no server latency to match), but the
    # caller's "wait sorry hold on" over the greeting, which the hold rule answers at once
    for turn in (t for t in result["per_turn"] if t["server"] is not None):
        if not turn["barge_in"]:
            # (the request may start in the pause on its settled words, turn.early_llm_ms: a
            # little before the final transcript this is counted from)
            assert turn["server"]["llm_ttft_ms"] >= FIRST_TOKEN_MS - 50
        else:
            assert turn["server"]["llm_ttft_ms"] < FIRST_TOKEN_MS  # "Sure, take your time."
