"""benchmarks/bench_hgt_mix.py: the per-mix summary and the cross-dataset choice."""

from __future__ import annotations

import math
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_hgt_mix  # noqa: E402


def _rows(values: dict[str, list[float]]) -> list[dict]:
    return [
        {"mix": mix, "seed": seed, "valid_recall@50": v, "train_seconds": 1.0 + seed}
        for mix, vals in values.items()
        for seed, v in enumerate(vals)
    ]


def _entry(values: dict[str, list[float]]) -> dict:
    return {"status": "done", "summary": bench_hgt_mix.summarise(_rows(values))}


def test_summarise_means_and_sample_std():
    s = bench_hgt_mix.summarise(_rows({"default": [0.1, 0.2, 0.3], "x": [0.5]}))
    assert s["default"]["valid_recall@50"]["mean"] == pytest.approx(0.2)
    assert s["default"]["valid_recall@50"]["std"] == pytest.approx(0.1)
    assert s["default"]["train_seconds"]["values"] == [1.0, 2.0, 3.0]
    assert s["x"]["valid_recall@50"]["std"] is None
    assert "seed" not in s["default"] and "mix" not in s["default"]


def test_choose_by_the_geometric_mean_of_ratios_to_the_default():
    datasets = {
        # b: +50 % on one dataset, -40 % on the other -> geomean 0.949 < 1
        "a": _entry({"default": [0.2, 0.2], "b": [0.3, 0.3], "c": [0.22, 0.221]}),
        "z": _entry({"default": [0.1, 0.1], "b": [0.06, 0.06], "c": [0.11, 0.111]}),
        "skipped": {"status": "skipped"},
    }
    got = bench_hgt_mix.choose(datasets, ["default", "b", "c"])
    assert got["chosen"] == "c"
    assert got["geomean_ratio"]["b"] == pytest.approx(math.sqrt(1.5 * 0.6))
    assert got["ratio_to_default"]["c"]["z"] == pytest.approx(1.105)
    assert got["paired_log_ratio"]["c"]["n"] == 4
    assert got["paired_log_ratio"]["c"]["beyond_noise"]
    # a tie with the default keeps the default
    tie = {"a": _entry({"default": [0.2, 0.2], "b": [0.2, 0.2]})}
    assert bench_hgt_mix.choose(tie, ["b", "default"])["chosen"] == "default"


def test_a_gain_within_seed_noise_keeps_the_default():
    # d: better on the mean (geomean > 1) but up on one seed, down on another
    datasets = {
        "a": _entry({"default": [0.20, 0.20, 0.20], "d": [0.24, 0.17, 0.20]}),
        "z": _entry({"default": [0.10, 0.10, 0.10], "d": [0.12, 0.09, 0.10]}),
    }
    got = bench_hgt_mix.choose(datasets, ["default", "d"])
    assert got["geomean_ratio"]["d"] > 1.0
    assert not got["paired_log_ratio"]["d"]["beyond_noise"]
    assert got["chosen"] == "default"


def test_markdown_has_a_row_per_mix():
    results = {"datasets": {"a": _entry({"default": [0.2, 0.3], "b": [0.1, 0.1]})}}
    text = bench_hgt_mix.markdown(results)
    assert "| default | 0.2500 ± 0.0707 |" in text
    assert text.count("\n") == 3


def test_write_docs_replaces_its_block_and_keeps_the_rest(tmp_path):
    results = {"datasets": {"a": _entry({"default": [0.2, 0.2], "b": [0.3, 0.31]})}}
    results["choice"] = bench_hgt_mix.choose(results["datasets"], ["default", "b"])
    path = tmp_path / "hgt.md"
    path.write_text("# HGT\n\nintro\n")
    bench_hgt_mix.write_docs(results, path)
    first = path.read_text()
    assert first.startswith("# HGT\n\nintro") and "Chosen by the rule: **b**" in first
    path.write_text(first + "\nafter\n")
    results["choice"]["chosen"] = "default"
    bench_hgt_mix.write_docs(results, path)
    again = path.read_text()
    assert again.count(bench_hgt_mix.MARK_BEGIN) == 1
    assert "**default**" in again and again.rstrip().endswith("after")
