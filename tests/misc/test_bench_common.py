"""benchmarks/_common.py: interleaved rounds (rotation, warm-up, samples per
method) and the medians / ratios summary, with fake methods (no heavy libs)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common  # noqa: E402


def fakes(names: list[str], calls: list[str]) -> dict:
    def make(name: str):
        return lambda: calls.append(name)

    return {name: make(name) for name in names}


def test_interleaved_rotation_and_samples():
    calls: list[str] = []
    times = _common.interleaved_times(fakes(["a", "b", "c"], calls), rounds=4)
    # one warm-up of each, in order, then round r starts at method r mod 3
    assert calls == (
        ["a", "b", "c"]
        + ["a", "b", "c"]
        + ["b", "c", "a"]
        + ["c", "a", "b"]
        + ["a", "b", "c"]
    )
    assert list(times) == ["a", "b", "c"]
    assert all(len(ts) == 4 for ts in times.values())
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_interleaved_warmup_per_method_and_none():
    calls: list[str] = []
    _common.interleaved_times(
        fakes(["ours", "peer"], calls), rounds=2, warmup={"ours": 2}
    )
    assert calls == ["ours", "ours"] + ["ours", "peer"] + ["peer", "ours"]
    calls.clear()
    times = _common.interleaved_times(fakes(["x"], calls), rounds=3, warmup=0)
    assert calls == ["x", "x", "x"] and len(times["x"]) == 3


def test_summarise_medians_and_ratios():
    times = {"ours": [1.0, 2.0, 4.0], "peer": [3.0, 4.0, 4.0], "other": [9.0]}
    s = _common.summarise(times, "ours", "peer")
    assert s["seconds"] == 2.0 and s["peer_seconds"] == 4.0
    assert s["ratio"] == pytest.approx(2.0)  # peer / ours: > 1 means ours faster
    assert s["round_ratio"] == pytest.approx(statistics.median([3.0, 2.0, 1.0]))
    assert s["rounds"] == 3
    assert s["runs"] == [1.0, 2.0, 4.0] and s["peer_runs"] == [3.0, 4.0, 4.0]
    rec = _common.record(
        "b",
        "m",
        s["seconds"],
        "s",
        peer="p",
        peer_value=s["peer_seconds"],
        higher_is_better=False,
    )
    assert rec["ratio"] == pytest.approx(s["ratio"])


def test_round_fields_are_the_summary_rounds():
    s = _common.summarise({"a": [1.0, 2.0], "b": [2.0, 2.0]}, "a", "b")
    assert _common.round_fields(s) == {
        "rounds": 2,
        "runs": [1.0, 2.0],
        "peer_runs": [2.0, 2.0],
        "round_ratio": s["round_ratio"],
    }
