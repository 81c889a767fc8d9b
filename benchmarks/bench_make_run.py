"""`make run` on a clean clone, timed: benchmarks/results/make_run.json.

Clones the repository's committed ``HEAD`` into a temporary folder, runs
``make run`` there (set-up of a new ``.venv`` + the default pipeline, exactly
what a new user runs) and records, as the newest entry of ``make_run.json``:

* ``value``: wall seconds of the whole ``make run`` (aim: 300 on 2 cores);
* ``pipeline_seconds_from_log`` and ``node_seconds``: the run's wall seconds and
  every node's, from :class:`~hgt_cluster_kedro.hooks.NodeTimerHook`'s summary
  line in the clone's ``info.log``;
* ``comparison``: selected rows of the run's ``comparison`` output (the quality
  a new user sees), and the commit, date and machine.

Nothing else may run on the machine meanwhile (its figure is a wall time).

    python benchmarks/bench_make_run.py                 # prepend a record
    python benchmarks/bench_make_run.py --keep /tmp/mr  # keep the clone there
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "results" / "make_run.json"
AIM_SECONDS = 300.0
#: comparison rows kept in the record (those the README quotes)
ROWS = (
    "twhin_kmeans",
    "hgt_kmeans",
    "hgt_kmeans_c2i",
    "simclusters_c2i",
    "hgt_kmeans_tuned",
    "srgnn",
    "popularity",
    "ease",
    "oracle",
)
COLUMNS = ("nmi", "ari", "recall@50", "ndcg@50", "gap_closed@50", "train_seconds")
_SUMMARY = re.compile(r"Node times \(s\), run ([0-9.]+) s: (.*)$")
_NODE = re.compile(r"^(\S+) ([0-9.]+)$")


def node_times(log: str) -> tuple[float, dict[str, float]]:
    """``(run seconds, {node: seconds})`` of the last NodeTimerHook summary in
    ``log`` (one line per record, as the file handler writes it)."""
    found = [m for line in log.splitlines() if (m := _SUMMARY.search(line))]
    if not found:
        raise ValueError("no 'Node times (s), run … s:' line in the run's info.log")
    last = found[-1]
    nodes: dict[str, float] = {}
    for item in last.group(2).split(", "):
        m = _NODE.match(item.strip())
        if m is None:
            raise ValueError(f"unreadable node time {item!r} in the summary line")
        nodes[m.group(1)] = float(m.group(2))
    return float(last.group(1)), nodes


def comparison_rows(data_root: Path) -> list[dict[str, Any]]:
    """The kept rows of the newest version of ``08_reporting/comparison.json``."""
    versions = sorted((data_root / "08_reporting" / "comparison.json").glob("*/"))
    if not versions:
        raise ValueError(f"no comparison output under {data_root}")
    table = json.loads((versions[-1] / "comparison.json").read_text())
    rows = table["methods"] if isinstance(table, dict) else table
    by_name = {r["method"]: r for r in rows}
    return [
        {"method": name, **{c: by_name[name].get(c) for c in COLUMNS}}
        for name in ROWS
        if name in by_name
    ]


def run(keep: Path | None = None, output: Path = OUTPUT) -> dict[str, Any]:
    """Clone, ``make run``, and prepend the record to ``output``."""
    work = keep or Path(tempfile.mkdtemp(prefix="bench_make_run_"))
    clone = work / "clone"
    if clone.exists():
        raise ValueError(f"--keep: {clone} exists; give an empty folder")
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=clone,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    start = time.perf_counter()
    with open(work / "make_run.log", "w") as log:
        done = subprocess.run(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"make run failed ({done.returncode}); see {work}")
    pipeline, nodes = node_times((clone / "info.log").read_text())
    record = {
        "benchmark": "make_run",
        "metric": "make run wall seconds on a clean clone (set-up + default pipeline)",
        "value": round(seconds, 1),
        "unit": "s",
        "aim": AIM_SECONDS,
        "pipeline_seconds_from_log": pipeline,
        "node_seconds": nodes,
        "note": (
            f"{os.cpu_count()} cores; benchmarks/bench_make_run.py: `make run` in a "
            "fresh `git clone` (new .venv); node times from NodeTimerHook's "
            "summary in info.log; selected comparison rows follow"
        ),
        "commit": commit,
        "date": datetime.now().strftime("%Y-%m-%dT%H:%M"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "comparison": comparison_rows(clone / "data"),
    }
    records = json.loads(output.read_text()) if output.exists() else []
    records.insert(0, record)
    tmp = output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2) + "\n")
    tmp.replace(output)
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return record


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the clone here")
    args = parser.parse_args(argv)
    record = run(args.keep)
    top = sorted(record["node_seconds"].items(), key=lambda kv: -kv[1])[:8]
    print(
        f"make run: {record['value']:.0f} s (pipeline {record['pipeline_seconds_from_log']:.0f}"
        f" s); slowest nodes: {', '.join(f'{n} {s:.0f}' for n, s in top)}"
    )


if __name__ == "__main__":
    main()
