"""Run every benchmark (``bench_*.py``) and rebuild ``results/README.md``.

python benchmarks/run_all.py                 # all, full size
python benchmarks/run_all.py --quick         # all, small sizes
python benchmarks/run_all.py sampler         # only bench_sampler.py
python benchmarks/run_all.py --table-only    # just rebuild the table
python benchmarks/run_all.py quality         # only bench_quality.py (quality.json,
                                             # docs/hgt.md; every method x seed)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def write_table() -> Path:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`); one JSON file per "
        "benchmark beside this table. Machine: see the `env` field of each record. "
        "Times are medians of several runs; `ratio` is ours / peer (peer / ours "
        "for lower-is-better metrics), so above 1 means ours is better.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        records = json.loads(path.read_text())
        if not isinstance(records, list):  # quality.json, hgt_mix.json: per dataset
            lines += [
                f"## {path.stem}",
                "",
                "Per dataset and method (or objective mix), mean ± std over "
                "training seeds: the tables are in `docs/hgt.md` "
                f"(`benchmarks/bench_{path.stem}.py`).",
                "",
            ]
            continue
        env = records[0].get("env", {}) if records else {}
        lines += [
            f"## {path.stem}",
            "",
            f"_{env.get('time', '')}, {env.get('cpus', '?')} CPUs_",
            "",
            "| metric | value | unit | peer | peer value | ratio |",
            "|---|---:|---|---|---:|---:|",
        ]
        for r in records:
            lines.append(
                f"| {r['metric']} | {_fmt(r['value'])} | {r['unit']} | "
                f"{r.get('peer', '')} | {_fmt(r.get('peer_value'))} | "
                f"{_fmt(r.get('ratio'))} |"
            )
        lines.append("")
    out = RESULTS / "README.md"
    out.write_text("\n".join(lines))
    return out


#: benchmarks run only when named (``run_all.py make_run``, ``run_all.py hgt_mix``:
#: a clean-clone `make run`; an hour of HGT trainings over three datasets; a
#: diagnostic of the default run's outputs)
ON_REQUEST = ("make_run", "hgt_mix", "c2i_ceiling")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        scripts = sorted(HERE.glob("bench_*.py"))
        if args.names:
            scripts = [
                s for s in scripts if s.stem.removeprefix("bench_") in args.names
            ]
        else:  # a whole `make run` in a clone: only when named
            scripts = [
                s for s in scripts if s.stem.removeprefix("bench_") not in ON_REQUEST
            ]
        for script in scripts:
            print(f"== {script.stem}", flush=True)
            cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
            subprocess.run(cmd, check=True)
    print(f"wrote {write_table()}")


if __name__ == "__main__":
    main()
