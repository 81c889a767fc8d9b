"""The HGT objective mix, chosen across datasets: hgt_mix.json (issue #13, item 3).

For each dataset (``fake``, ``dblp``, ``yelp`` as in ``bench_quality.py``) the
project's own pipelines run in a throw-away copy of the project: the data
pipelines once, then for every training seed ``twhin`` (HGT's warm start) and,
for every objective mix, only the node ``train_hgt`` with the mix's runtime
parameters (``hgt_som_joint`` is not trained). Each trained embedding is scored
on the **validation split only**: the plain u2u2i channel's Recall@50 and
NDCG@50 (``evaluation.m_neighbors`` neighbours, own train items excluded,
:func:`~hgt_cluster_kedro.evaluation.retrieval.evaluate_u2u2i` with the valid
pairs as the held-out set) — the selection criterion — next to the trainer's own
link validation (its last epoch's Recall@``val_k``) and the training seconds.
The TwHIN tables of the same seed are scored the same way (reference row).
For information only, never to choose: NMI of KMeans (``clustering.k``) on the
user embeddings against the dataset's ground truth where it has one.

The choice rule (``choose``): for every dataset, each mix's mean validation
Recall@50 relative to the default mix's; the chosen mix has the best geometric
mean of these ratios over the datasets, among the mixes whose gain is beyond
seed noise (the paired per-seed log-ratios to the default, over every dataset
and seed, have a mean above two standard errors); none: the default. Test pairs
are never read.

    python benchmarks/bench_hgt_mix.py --input-root dblp=../shared/datasets/dblp \\
        --input-root yelp=../shared/datasets/yelp
    python benchmarks/bench_hgt_mix.py --datasets dblp --seeds 0 --mixes default,relations
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import (  # noqa: E402
    DATASETS,
    ROOT,
    Project,
    _input_root,
    _input_roots,
    _pipelines_for,
    git_commit,
    merge,
    seed_overrides,
    seed_parameters,
    write_json,
)
from bench_quality import summarise as summarise_values  # noqa: E402 (per field)

logger = logging.getLogger("bench_hgt_mix")
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "hgt.md"
DEFAULT_MIX = "default"
MARK_BEGIN = "<!-- hgt_mix:begin (written by benchmarks/bench_hgt_mix.py) -->"
MARK_END = "<!-- hgt_mix:end -->"

#: mix name -> (what it is, runtime parameters over the environment's)
MIXES: dict[str, tuple[str, dict[str, Any]]] = {
    DEFAULT_MIX: ("the base default: sampled [4, 2], link, TwHIN warm start", {}),
    "prototype": (
        "default + SwAV prototype term (weight 0.1)",
        {"hgt": {"train": {"objectives": {"prototype": {"weight": 0.1}}}}},
    ),
    "full": (
        "full graph, link (40 steps)",
        {"hgt": {"train": {"mode": "full", "max_steps": 40}}},
    ),
    "relations": (
        "full graph, link + every relation as a link task (weight 0.3, "
        "targets included; 40 steps)",
        {
            "hgt": {
                "train": {
                    "mode": "full",
                    "max_steps": 40,
                    "objectives": {
                        "relations": {"weight": 0.3, "include_targets": True}
                    },
                }
            }
        },
    ),
    "masked_edge": (
        "full graph, link + KGRec/HGMAE masked-edge reconstruction with its "
        "cross-view contrast (40 steps)",
        {
            "hgt": {
                "train": {
                    "mode": "full",
                    "max_steps": 40,
                    "objectives": {"masked_edge": {"weight": 1.0}},
                }
            }
        },
    ),
}


class Scorer:
    """Validation u2u2i metrics (criterion) and KMeans NMI (information)."""

    def __init__(self, project: Project, params: dict[str, Any]) -> None:
        from hgt_cluster_kedro.config.sections import EvaluationParams
        from hgt_cluster_kedro.pipelines.evaluation.nodes import _pairs, _truth

        graph = project.load("graph", params)
        inter = project.load("interactions", params)
        resolved = project.params(params)
        evaluation = EvaluationParams.model_validate(resolved["evaluation"])
        self.m = evaluation.m_neighbors
        self.k = int(resolved["clustering"]["k"])
        self.user_ids = graph.ids[graph.schema.user_type]
        self.n_items = graph.num_nodes[graph.schema.item_type]
        self.train, self.valid = _pairs(inter, "train"), _pairs(inter, "valid")
        table = (
            project.load("user_communities", params)
            if evaluation.ground_truth is not None
            else None
        )
        self.truth = _truth(graph, table, evaluation)  # -1: no label; None: none

    def __call__(self, frame: Any, seed: int) -> dict[str, float]:
        from sklearn.cluster import KMeans
        from sklearn.metrics import normalized_mutual_info_score

        from hgt_cluster_kedro.embeddings import from_frame
        from hgt_cluster_kedro.evaluation.retrieval import evaluate_u2u2i

        emb = from_frame(frame, self.user_ids, name="user_embeddings")
        got = evaluate_u2u2i(
            emb, self.train, self.valid, self.n_items, ks=(50,), m_neighbors=self.m
        )
        out = {"valid_recall@50": got["recall@50"], "valid_ndcg@50": got["ndcg@50"]}
        if self.truth is not None:
            known = self.truth >= 0
            unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            labels = KMeans(self.k, n_init=3, random_state=seed).fit_predict(unit)
            out["nmi_info_only"] = float(
                normalized_mutual_info_score(self.truth[known], labels[known])
            )
        return out


def run_dataset(
    name: str,
    *,
    mixes: Sequence[str],
    seeds: Sequence[int],
    workdir: Path,
    input_root: str | None,
) -> dict[str, Any]:
    """Every (seed, mix) of one dataset: validation rows per run."""
    env = DATASETS[name]
    project = Project(ROOT, workdir / name, env)
    data_params, missing = _input_root(project, ROOT, input_root)
    if missing:
        return {"status": "skipped", "env": env, "reason": missing}
    resolved = project.params(data_params)
    seed_names = seed_parameters(resolved)
    data_pipes, _ = _pipelines_for(resolved, ["hgt_kmeans"])
    project.run(data_pipes, data_params)
    scorer = Scorer(project, data_params)
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        params = merge(data_params, seed_overrides(seed_names, seed))
        project.run(["twhin"], params)
        ref = scorer(project.load("twhin_user_embeddings", params), seed)
        train = project.load("twhin_training", params)
        rows.append(
            {
                "mix": "twhin (reference)",
                "seed": seed,
                **ref,
                "train_seconds": float(train.get("train_seconds", float("nan"))),
            }
        )
        for mix in mixes:
            run_params = merge(params, MIXES[mix][1])
            # only train_hgt: the hgt pipeline also fine-tunes the joint SOM
            wall = project.run(["hgt"], run_params, node_names=["train_hgt"])
            summary = project.load("hgt_training", run_params)
            history = summary.get("history", {})
            got = scorer(project.load("hgt_user_embeddings", run_params), seed)
            row = {
                "mix": mix,
                "seed": seed,
                **got,
                "link_val_recall": history.get("best_val_recall"),
                "steps": history.get("total_steps"),
                "train_seconds": float(summary.get("train_seconds", wall)),
                "node_seconds": wall,
            }
            logger.info("%s seed %d %s: %s", name, seed, mix, row)
            rows.append(row)
    return {
        "status": "done",
        "env": env,
        **git_commit(ROOT),
        "seeds": list(seeds),
        "rows": rows,
        "summary": summarise(rows),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per mix: mean ± std (ddof 1) over seeds of every numeric field
    (:func:`bench_quality.summarise`)."""
    out: dict[str, dict[str, Any]] = {}
    for mix in dict.fromkeys(r["mix"] for r in rows):
        mine = [r for r in rows if r["mix"] == mix]
        out[mix] = {
            key: summarise_values([r.get(key) for r in mine])
            for key in mine[0]
            if key not in ("mix", "seed")
            and all(
                isinstance(r.get(key), int | float) and math.isfinite(r[key])
                for r in mine
            )
        }
    return out


def choose(datasets: dict[str, Any], mixes: Sequence[str]) -> dict[str, Any]:
    """The mix with the best geometric mean, over the datasets, of its mean
    validation Recall@50 relative to the default's, among the mixes whose gain
    is beyond seed noise: the mean of the paired per-seed log-ratios to the
    default (every dataset x seed) minus two of its standard errors is above
    zero. No such mix: the default."""
    done = {n: d for n, d in datasets.items() if d.get("status") == "done"}
    ratios: dict[str, dict[str, float]] = {m: {} for m in mixes}
    paired: dict[str, list[float]] = {m: [] for m in mixes}
    for name, entry in done.items():
        summary = entry["summary"]
        base = summary[DEFAULT_MIX]["valid_recall@50"]
        for mix in mixes:
            got = summary[mix]["valid_recall@50"]
            ratios[mix][name] = got["mean"] / base["mean"]
            paired[mix] += [
                math.log(a / b)
                for a, b in zip(got["values"], base["values"], strict=True)
            ]
    score = {
        m: math.exp(statistics.fmean(math.log(r) for r in rs.values()))
        for m, rs in ratios.items()
        if rs
    }
    noise = {}
    for mix, logs in paired.items():
        se = statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else None
        mean = statistics.fmean(logs) if logs else 0.0
        noise[mix] = {
            "mean_log_ratio": mean,
            "standard_error": se,
            "n": len(logs),
            "beyond_noise": se is not None and mean - 2.0 * se > 0.0,
        }
    eligible = [m for m in score if m == DEFAULT_MIX or noise[m]["beyond_noise"]]
    best = max(eligible, key=lambda m: (score[m], m == DEFAULT_MIX))
    return {
        "chosen": best,
        "geomean_ratio": score,
        "ratio_to_default": ratios,
        "paired_log_ratio": noise,
    }


def markdown(results: dict[str, Any]) -> str:
    """One table: rows = mixes, columns = datasets (valid Recall@50, seconds)."""
    done = {n: d for n, d in results["datasets"].items() if d.get("status") == "done"}
    head = "| mix | " + " | ".join(
        f"{n}: valid R@50 | {n}: train s | {n}: NMI (info)" for n in done
    )
    lines = [head + " |", "|---" + "|---:" * (3 * len(done)) + "|"]
    mixes = dict.fromkeys(m for d in done.values() for m in d["summary"])

    def cell(stats: dict[str, Any] | None, fmt: str) -> str:
        if not stats:
            return "–"
        std = stats.get("std")
        return f"{stats['mean']:{fmt}}" + (f" ± {std:{fmt}}" if std is not None else "")

    for mix in mixes:
        cells = []
        for d in done.values():
            s = d["summary"].get(mix, {})
            cells += [
                cell(s.get("valid_recall@50"), ".4f"),
                cell(s.get("train_seconds"), ".1f"),
                cell(s.get("nmi_info_only"), ".3f"),
            ]
        lines.append(f"| {mix} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(results: dict[str, Any], path: Path = DOCS) -> Path:
    """The table (and the choice) between the markers of ``path``; a new
    section at the end when the markers are absent."""
    choice = results.get("choice") or {}
    block = "\n".join(
        [
            MARK_BEGIN,
            markdown(results),
            "",
            f"Chosen by the rule: **{choice.get('chosen', '–')}** (geometric mean "
            "of the validation Recall@50 ratios to the default: "
            + ", ".join(
                f"{m} {r:.3f}" for m, r in choice.get("geomean_ratio", {}).items()
            )
            + ").",
            MARK_END,
        ]
    )
    text = path.read_text() if path.exists() else ""
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## The objective mix across datasets\n\n"
        text += block + "\n"
    path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="fake,dblp,yelp")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--input-root", action="append", default=[])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS / "hgt_mix.json")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/hgt.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    split = [x.strip() for x in args.datasets.split(",") if x.strip()]
    mixes = [x.strip() for x in args.mixes.split(",") if x.strip()]
    unknown = [m for m in mixes if m not in MIXES] + [
        d for d in split if d not in DATASETS
    ]
    if unknown or DEFAULT_MIX not in mixes:
        parser.error(
            f"unknown {unknown} (mixes: {list(MIXES)}, datasets: {list(DATASETS)}); "
            f"--mixes must include {DEFAULT_MIX!r}"
        )
    seeds = [int(s) for s in args.seeds.split(",")]
    roots = _input_roots(args.input_root)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hgt_mix_"))
    results: dict[str, Any] = {
        "benchmark": "hgt_mix",
        "criterion": "validation u2u2i Recall@50 (plain channel), mean over seeds",
        "mixes": {m: {"about": MIXES[m][0], "params": MIXES[m][1]} for m in mixes},
        "datasets": {},
    }
    try:
        for name in split:
            results["datasets"][name] = run_dataset(
                name,
                mixes=mixes,
                seeds=seeds,
                workdir=work,
                input_root=roots.get(name),
            )
            results["choice"] = choose(results["datasets"], mixes)
            write_json(results, args.output)  # after each dataset: partial record
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(results))
    print(json.dumps(results.get("choice"), indent=1))
    if not args.no_docs:
        print(f"wrote {write_docs(results)}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
