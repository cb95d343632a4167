"""The result document, its schema, the table, the HTML page and ``slotline bench compare``."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from slotline.agent.bench.compare import compare
from slotline.agent.bench.html import render
from slotline.agent.bench.report import SCHEMA, load_result, summary_table, validate, write_result
from slotline.agent.bench.svg import Bar, Segment, Series, chart, nice_ticks, waterfall
from slotline.agent.cli import main
from tests.unit.bench_runs import result_of


def test_a_result_follows_its_schema_and_the_schema_catches_omissions() -> None:
    result: dict[str, Any] = result_of([700.0, 800.0])
    assert result["schema"] == SCHEMA and validate(result) == []
    assert result["latency"]["caller"]["turn_latency_ms"]["count"] == 4
    assert result["latency"]["server"]["server_overhead_ms"]["p50"] == 0.0
    assert result["latency"]["agreement_ms"]["p50"] == 20.0
    broken = copy.deepcopy(result)
    del broken["audio"]["outbound_gaps"]
    broken["calls"]["failed"] = -1
    problems = validate(broken)
    assert any("outbound_gaps" in p for p in problems)
    assert any(p.startswith("calls/failed") for p in problems)


def test_summary_table_and_html_page(tmp_path: Path) -> None:
    result: dict[str, Any] = result_of([700.0, 800.0])
    table = summary_table(result)
    assert "caller turn_latency_ms" in table and "server server_overhead_ms" in table
    assert "caller - server turn" in table
    assert " target slotline-inprocess on asyncio" in table  # the loop the server ran on
    page = render(result)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 5
    for title in ("Latency CDF per stage", "Per-turn waterfall", "Latency vs calls up",
                  "CPU per call", "Calls, CPU and memory"):
        assert title in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "").replace("http://127.0.0.1:1", "")
    assert load_result(write_result(result, tmp_path)) == result


def test_load_result_rejects_other_documents(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "something/2"}))
    with pytest.raises(ValueError, match="slotline-bench/1"):
        load_result(other)


def test_compare_two_results_with_ratios(tmp_path: Path) -> None:
    a: dict[str, Any] = result_of([700.0, 800.0])
    b: dict[str, Any] = result_of([1400.0, 1600.0])
    rows = {row["metric"]: row for row in compare(a, b)}
    p95 = rows["caller turn_latency_ms p95"]
    assert p95["ratio"] == pytest.approx(2.0) and p95["better"] == "a"
    assert rows["failed calls"]["ratio"] is None and rows["failed calls"]["better"] == "="
    assert "capacity: last good calls" not in rows  # neither run searched

    write_result(a, tmp_path / "a")
    write_result(b, tmp_path / "b")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["bench", "compare", str(tmp_path / "a/result.json"),
                       str(tmp_path / "b/result.json")])
    assert status == 0
    line = next(x for x in out.getvalue().splitlines() if "caller turn_latency_ms p95" in x)
    assert line.split()[-2:] == ["2.00", "a"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["bench", "compare", str(tmp_path / "a/result.json")]) == 2
    assert "usage" in err.getvalue()


def test_svg_ticks_and_charts() -> None:
    assert nice_ticks(0, 87) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0.3, 0.9) == [0.2, 0.4, 0.6, 0.8, 1.0]
    svg = chart([Series("a<b", [(0, 1), (10, 3)]), Series("dots", [(5, 2)], "scatter")],
                title="T & U", x_label="ms", y_label="n")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "a&lt;b" in svg and "T &amp; U" in svg and "<circle" in svg
    assert "no data" in chart([Series("empty", [])], title="t", x_label="x", y_label="y")
    bars = waterfall([Bar("turn", [Segment(600, "endpoint_ms", "#111"),
                                   Segment(100, "tts_ttfb_ms", "#222")], 820.0)],
                     title="W", x_label="ms")
    assert bars.count("<rect") >= 3 and "endpoint_ms 600 ms" in bars
