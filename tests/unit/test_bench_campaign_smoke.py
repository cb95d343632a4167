"""``python -m bench.campaign`` runs end to end on a tiny campaign: pacing over 3 contacts and
3 contacts through ``slotline serve --workers 2`` on scratch PostgreSQL (no live calls)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from bench.campaign import main


def test_a_tiny_campaign_bench_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench_campaign.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(
            [
                "--pacing",
                "3",
                "--humans",
                "0",
                "--machines",
                "0",
                "--contacts",
                "3",
                "--out",
                str(out),
            ]
        )
    assert status == 0
    result = json.loads(out.read_text())
    assert result["pacing"]["emulator"]["dials"] == 3
    workers = result["workers"]
    assert workers["duplicates"] == 0 and workers["emulator_calls"] == 3
    assert workers["server_attempts"] == 3
    assert result["harness_cpu_s"] > 0 and result["max_loop_lag_s"] >= 0
    assert "duplicates" in stdout.getvalue()
