"""Quality of every method on every dataset over training seeds: quality.json.

For each dataset (``fake``: the base environment's generated data, ``dblp``:
``--env dblp``, ``yelp``: ``--env yelp``) the project's own pipelines run
through a ``KedroSession`` in a throw-away copy of the project (``conf/`` copied,
an empty ``data/``): the data pipelines once (``data_generation`` or
``ingestion``, then ``graph``: data and split stay fixed), then, for every
training seed, the training pipelines, ``clustering``, ``som`` and
``evaluation`` with every seed parameter of the run overridden (``--params``
style runtime parameters: ``twhin.seed``, ``hgt.train.seed``,
``clustering.seed`` … found in the environment's parameters; the seeds of the
data, the split and the evaluation stay fixed). Each method's metrics come
from the ``comparison`` output; ``benchmarks/results/quality.json`` gets, per
dataset and method, mean ± std over the seeds (sample std, ``ddof = 1``) of
every metric, the training seconds, the seeds, the git commit and the
parameters overridden, and ``docs/hgt.md`` a table between its
``quality:begin`` / ``quality:end`` markers. A dataset run again replaces its
entry (with ``--merge``, only the rows of the methods it ran: the others stay,
listed under ``kept_from`` with the commit that measured them); the other
datasets stay.

Hyperparameters are never chosen here: the methods run with their
configuration; EASE and item-kNN choose theirs on the valid split inside the
evaluation.

    python benchmarks/bench_quality.py                     # fake, dblp, yelp; every method; seeds 0,1,2
    python benchmarks/bench_quality.py --datasets fake --skip-pipelines hgt
    python benchmarks/bench_quality.py --datasets dblp --methods twhin_kmeans,count_profile_kmeans \
        --input-root dblp=/path/to/heco/dblp
    python benchmarks/bench_quality.py --methods hgt_kmeans,hgt_som_joint --merge  # rerun HGT only
    python benchmarks/bench_quality.py --quick             # 1/10 fake data, no HGT, 2 seeds -> quality_quick.json

A dataset whose environment (``conf/<env>``) or input files do not exist is
skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "hgt.md"
#: dataset name -> Kedro environment
DATASETS = {"fake": "base", "dblp": "dblp", "yelp": "yelp"}
#: rows of the comparison that are not methods of METHODS
REFERENCE_ROWS = ("popularity", "random", "ease", "item_knn", "oracle")
#: parameter sections whose seeds stay fixed (data, split, evaluation protocol)
FIXED_SEED_SECTIONS = ("data_generation", "ingestion", "graph", "evaluation")
#: pipelines that produce the data every method shares
DATA_PIPELINES = ("data_generation", "ingestion", "graph")
#: record fields that are not quality metrics
SKIP_FIELDS = ("k", "m_neighbors", "cluster_boost", "reference", "available")
MARK_BEGIN = "<!-- quality:begin (written by benchmarks/bench_quality.py) -->"
MARK_END = "<!-- quality:end -->"
#: columns of the docs table: (metric key, header)
DOC_COLUMNS = (
    ("nmi", "NMI"),
    ("ari", "ARI"),
    ("recall@50", "Recall@50"),
    ("ndcg@50", "NDCG@50"),
    ("gap_closed@50", "gap closed@50"),
    ("train_seconds", "train s"),
)

#: --quick: a tenth of the default fake data (the method rows of quality_quick.json)
QUICK_PARAMS = (
    "data_generation.n_users=2000,data_generation.n_notes=3000,"
    "data_generation.relations.follow_note.n_edges=30000,"
    "data_generation.relations.comment_note.n_edges=12000,"
    "data_generation.relations.share_note.n_edges=6000"
)

logger = logging.getLogger("bench_quality")


# ------------------------------------------------------------------- helpers


def parse_params(text: str | None) -> dict[str, Any]:
    """``"a.b=1,c=x"`` as Kedro's ``--params`` reads it (a nested dict)."""
    from omegaconf import OmegaConf

    if not text:
        return {}
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if "=" not in item or not item.split("=")[0]]
    if bad:
        raise ValueError(f"--params items must be key=value, got {bad}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(items))


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of two nested dicts (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(dotted(value, f"{name}."))
        else:
            out[name] = value
    return out


def seed_parameters(params: dict[str, Any]) -> list[str]:
    """Dotted names of every ``seed`` parameter outside the fixed sections."""
    return sorted(
        key
        for key in dotted(params)
        if key.rsplit(".", 1)[-1] == "seed"
        and key.split(".", 1)[0] not in FIXED_SEED_SECTIONS
    )


def seed_overrides(names: Sequence[str], seed: int) -> dict[str, Any]:
    """Runtime parameters setting every name in ``names`` to ``seed``."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(
        OmegaConf.from_dotlist([f"{n}={seed}" for n in names])
    )


#: what this benchmark writes itself: a run of several datasets must not call
#: the tree dirty because the first dataset's results were written
OWN_OUTPUTS = ("benchmarks/results/quality.json", "docs/hgt.md")


def git_commit(root: Path = ROOT) -> dict[str, Any]:
    """The commit of ``root`` and whether its tracked files differ from it
    (this benchmark's own outputs, :data:`OWN_OUTPUTS`, aside)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
            + [f":(exclude){path}" for path in OWN_OUTPUTS],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(dirty)}


def summarise(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample std (``ddof = 1``; ``None`` from one value) of the
    values that exist, with the values themselves."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "n": 0, "values": values}
    std = statistics.stdev(present) if len(present) > 1 else None
    return {
        "mean": statistics.fmean(present),
        "std": std,
        "n": len(present),
        "values": values,
    }


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def aggregate(
    runs: list[dict[str, Any]], rows: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Per method: mean ± std over the runs of every numeric metric.

    Args:
        runs: ``{"seed": s, "records": [comparison record, ...]}`` per run.
        rows: methods to keep (default: all).

    Returns:
        ``{method: {"seeds": [...], "metrics": {name: summarise(...)},
        "notes": {...}, "choices": {...}}}``; a metric that a run lacks (or
        holds as ``None``, e.g. ``gap_closed@50`` without an oracle) counts as
        missing there; ``choices`` holds, per seed, the ``m_neighbors`` and
        ``popularity_weight`` that a validation-tuned row chose.
    """
    out: dict[str, dict[str, Any]] = {}
    by_method: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for run in runs:
        for record in run["records"]:
            name = record["method"]
            if rows is None or name in rows:
                by_method.setdefault(name, []).append((run["seed"], record))
    for name, entries in by_method.items():
        keys: list[str] = []
        for _, record in entries:
            for key, value in record.items():
                if key in keys or key in SKIP_FIELDS or key.startswith("seconds_"):
                    continue
                if _numeric(value) or (value is None and key.startswith("gap_closed")):
                    keys.append(key)
        metrics = {
            key: summarise(
                [r.get(key) if _numeric(r.get(key)) else None for _, r in entries]
            )
            for key in keys
        }
        notes = {
            key: sorted({str(r[key]) for _, r in entries if r.get(key)})
            for key in ("gap_closed_reason", "same_embedding_as", "same_clusters_as")
            if any(r.get(key) for _, r in entries)
        }
        # a validation-tuned row (it carries its grid's valid recall): the
        # setting each seed chose
        choices = {
            key: [r.get(key) for _, r in entries]
            for key in ("m_neighbors", "popularity_weight")
            if any("valid_recall" in r for _, r in entries)
        }
        out[name] = {
            "seeds": [seed for seed, _ in entries],
            "metrics": metrics,
            **({"notes": notes} if notes else {}),
            **({"choices": choices} if choices else {}),
        }
    return out


def merge_entry(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the methods of ``old`` that ``new`` did not run kept as they
    were, each listed under ``kept_from`` with the commit and start of the run
    that measured it (``--merge``: rerun some methods, keep the others)."""
    if not old or old.get("status") != "done" or new.get("status") != "done":
        return new
    kept_from = dict(old.get("kept_from", {}))
    methods = dict(new["methods"])
    for name, entry in old["methods"].items():
        if name in methods:
            kept_from.pop(name, None)
            continue
        methods[name] = entry
        kept_from.setdefault(
            name,
            {
                "git_commit": old.get("git_commit"),
                "git_dirty": old.get("git_dirty"),
                "started": old.get("started"),
            },
        )
    return {
        **new,
        "methods": methods,
        **({"kept_from": kept_from} if kept_from else {}),
    }


# ----------------------------------------------------------------- the runs


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class Project:
    """A throw-away copy of the project (``conf/``, ``pyproject.toml``, empty
    ``data/``) that runs pipelines through a ``KedroSession``."""

    def __init__(self, template: Path, root: Path, env: str) -> None:
        self.root, self.env = root, env
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        shutil.copytree(template / "conf", root / "conf")
        shutil.copy(template / "pyproject.toml", root / "pyproject.toml")
        (root / "src").mkdir()
        (root / "data").mkdir()

    def _session(self, params: dict[str, Any]):
        from kedro.framework.project import pipelines
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(self.root)
        pipelines.configure("hgt_cluster_kedro.pipeline_registry")  # HGT_METHODS
        return KedroSession.create(
            project_path=self.root, env=self.env, runtime_params=params or None
        )

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The environment's parameters with ``params`` merged, as plain dicts
        (sections Kedro already validated into pydantic models are dumped)."""
        with self._session(params) as session:
            return _plain(session.load_context().params)

    def run(
        self,
        pipelines: Sequence[str],
        params: dict[str, Any],
        node_names: Sequence[str] | None = None,
    ) -> float:
        """Seconds to run ``pipelines`` (only ``node_names`` of them if given)."""
        cwd = Path.cwd()
        os.chdir(self.root)  # relative catalog paths land in the copy
        try:
            start = time.perf_counter()
            with self._session(params) as session:
                session.run(
                    pipeline_names=list(pipelines),
                    node_names=list(node_names) if node_names else None,
                )
            return time.perf_counter() - start
        finally:
            os.chdir(cwd)

    def load(self, dataset: str, params: dict[str, Any]) -> Any:
        cwd = Path.cwd()
        os.chdir(self.root)
        try:
            with self._session(params) as session:
                return session.load_context().catalog.load(dataset)
        finally:
            os.chdir(cwd)


def select_methods(
    methods: Sequence[str] | None, skip_pipelines: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(methods of METHODS to build, reference rows to keep) for the options."""
    from hgt_cluster_kedro.pipelines.methods import METHODS

    names = list(methods) if methods else [*METHODS, *REFERENCE_ROWS]
    unknown = [n for n in names if n not in METHODS and n not in REFERENCE_ROWS]
    if unknown:
        raise ValueError(
            f"--methods: unknown {unknown}; known: {[*METHODS, *REFERENCE_ROWS]}"
        )
    chosen = [
        n
        for n in names
        if n in METHODS and METHODS[n].training_pipeline not in skip_pipelines
    ]
    if not chosen:
        raise ValueError(
            "no method left to train (--methods / --skip-pipelines leave none); "
            f"methods: {list(METHODS)}"
        )
    return chosen, [n for n in names if n in REFERENCE_ROWS]


def _pipelines_for(
    params: dict[str, Any], methods: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(data pipelines, per-seed pipelines) for the chosen methods: the data
    come from ``ingestion`` where the environment configures one, else from
    ``data_generation``; then ``graph``, the methods' training pipelines,
    ``clustering`` / ``som`` where a method uses them, and ``evaluation``."""
    from hgt_cluster_kedro.config.sections import DEFAULT_RUN, SOURCES
    from hgt_cluster_kedro.pipelines.methods import METHODS

    source = "ingestion" if params.get("ingestion") else "data_generation"
    chosen = [METHODS[m] for m in methods]
    needed = {m.training_pipeline for m in chosen} | {"evaluation"}
    needed |= {"clustering"} if any(m.clusterer == "kmeans" for m in chosen) else set()
    needed |= {"som"} if any(m.clusterer == "som" for m in chosen) else set()
    if "hgt" in needed and (params.get("hgt") or {}).get("warm_start") == "twhin":
        needed |= {"twhin"}  # HGT's id embeddings start from the TwHIN tables
    per_seed = [p for p in (*SOURCES, *DEFAULT_RUN) if p in needed]
    per_seed += sorted(needed - set(per_seed))  # a method's own new pipeline
    return [source, "graph"], per_seed


def _input_root(
    project: Project, template: Path, root: str | None
) -> tuple[dict[str, Any], str | None]:
    """Runtime parameters pointing ``ingestion.root`` at the input files
    (``root`` if given, else the environment's; relative: to the template
    project), or the reason they are missing. Nothing for an environment
    without ``ingestion`` (generated data)."""
    ingestion = project.params({}).get("ingestion")
    if not ingestion:
        return {}, None
    path = Path(root or ingestion.get("root") or ".")
    path = path if path.is_absolute() else template / path
    if not path.is_dir():
        return {}, (
            f"input files not found: {path} (ingestion.root of environment "
            f"{project.env!r}, or --input-root {project.env}=PATH; see docs/)"
        )
    return {"ingestion": {"root": str(path)}}, None


def run_dataset(
    name: str,
    *,
    template: Path,
    workdir: Path,
    methods: Sequence[str],
    rows: Sequence[str],
    seeds: Sequence[int],
    extra: dict[str, Any],
    input_root: str | None = None,
) -> dict[str, Any]:
    """Every seed of one dataset; the dataset's entry of quality.json."""
    env = DATASETS[name]
    if env != "base" and not (template / "conf" / env).is_dir():
        return {
            "status": "skipped",
            "env": env,
            "reason": f"conf/{env} does not exist (no {name!r} environment here)",
        }
    os.environ["HGT_METHODS"] = ",".join(methods)
    project = Project(template, workdir / name, env)
    data_params, missing = _input_root(project, template, input_root)
    if missing:
        return {"status": "skipped", "env": env, "reason": missing}
    base = merge(extra, data_params)  # the resolved input root wins
    resolved = project.params(base)
    seed_names = seed_parameters(resolved)
    data_pipes, seed_pipes = _pipelines_for(resolved, methods)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    logger.info("%s: data pipelines %s", name, data_pipes)
    data_seconds = project.run(data_pipes, base)
    runs = []
    for seed in seeds:
        params = merge(base, seed_overrides(seed_names, seed))
        logger.info("%s, seed %d: pipelines %s", name, seed, seed_pipes)
        wall = project.run(seed_pipes, params)
        records = project.load("comparison", params)
        runs.append({"seed": int(seed), "wall_seconds": wall, "records": records})
    return {
        "status": "done",
        "env": env,
        "started": started,
        **git_commit(ROOT),
        "seeds": [int(s) for s in seeds],
        "seed_parameters": seed_names,
        "parameters_overridden": {
            **{n: "the run's seed" for n in seed_names},
            **dotted(extra),
            **dotted(data_params),
        },
        "data_pipelines": data_pipes,
        "pipelines": seed_pipes,
        "data_seconds": data_seconds,
        "runs": [{"seed": r["seed"], "wall_seconds": r["wall_seconds"]} for r in runs],
        # each method's validation-tuned u2u2i row (evaluation.u2u2i_tuning)
        # and cluster -> top-items row (c2i) where the comparison has them
        "methods": aggregate(
            runs,
            [
                *methods,
                *(f"{m}_tuned" for m in methods),
                *(f"{m}_c2i" for m in methods),
                *(["simclusters_u2i"] if "simclusters" in methods else []),
                *rows,
            ],
        ),
    }


# ---------------------------------------------------------------- reporting


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    mean, std = entry["mean"], entry.get("std")
    fmt = ".1f" if abs(mean) >= 10 else ".3f"
    return f"{mean:{fmt}}" + (f" ± {std:{fmt}}" if std is not None else "")


def _notes(method: dict[str, Any]) -> str:
    notes = method.get("notes", {})
    out = []
    if notes.get("same_embedding_as"):
        out.append(f"embedding of {', '.join(notes['same_embedding_as'])}")
    if notes.get("same_clusters_as"):
        out.append(f"clusters of {', '.join(notes['same_clusters_as'])} (ARI 1.0)")
    return "; ".join(out)


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/hgt.md: one per dataset that ran."""
    lines = [
        "Mean ± std over training seeds (sample std; data and split fixed per "
        "dataset), from `benchmarks/results/quality.json` "
        "(`python benchmarks/bench_quality.py`). `nmi_k*`: the label protocol's "
        "mean per run, averaged over training seeds. gap closed@50 = (Recall@50 "
        "− popularity) / (oracle − popularity), planted data only.",
        "",
    ]
    for name, entry in results.get("datasets", {}).items():
        if entry.get("status") != "done":
            lines += [f"**{name}**: skipped ({entry.get('reason')}).", ""]
            continue
        methods = entry["methods"]
        protocol = sorted(
            {
                key
                for m in methods.values()
                for key in m["metrics"]
                if key.startswith(("nmi_k", "ari_k")) and key.endswith("_mean")
            },
            key=lambda key: (key[3:], key.startswith("ari")),
        )
        columns = [*DOC_COLUMNS[:2], *[(p, p[: -len("_mean")]) for p in protocol]]
        columns += list(DOC_COLUMNS[2:])
        commit = (entry.get("git_commit") or "?")[:10]
        lines += [
            f"**{name}** (`--env {entry['env']}`; seeds {entry['seeds']}; commit "
            f"`{commit}`{' + local changes' if entry.get('git_dirty') else ''}; "
            f"{entry['started']})",
            "",
            "| method | " + " | ".join(h for _, h in columns) + " | notes |",
            "|---|" + "---:|" * len(columns) + "---|",
        ]
        for method, m in methods.items():
            cells = [_cell(m["metrics"].get(key)) for key, _ in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {_notes(m)} |")
        lines.append("")
    return "\n".join(lines)


def write_docs(results: dict[str, Any], path: Path = DOCS) -> Path:
    """Replace the block between the markers of ``path`` (create the file with
    a short introduction when it does not exist)."""
    block = f"{MARK_BEGIN}\n{markdown(results)}\n{MARK_END}"
    if path.exists():
        text = path.read_text()
        if MARK_BEGIN in text and MARK_END in text:
            head, rest = text.split(MARK_BEGIN, 1)
            tail = rest.split(MARK_END, 1)[1]
            text = head + block + tail
        else:
            text = text.rstrip() + "\n\n## Quality\n\n" + block + "\n"
    else:
        text = (
            "# HGT: objectives, ablation and quality\n\n"
            "How the user-embedding methods compare, measured by "
            "`benchmarks/bench_quality.py` on the fake data (planted "
            "communities), DBLP and Yelp over several training seeds. Every "
            "quality figure quoted in the README comes from "
            "`benchmarks/results/quality.json`; hyperparameters are chosen on "
            "validation link recall only, never on test metrics.\n\n"
            "## Quality\n\n" + block + "\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def run(
    datasets: Sequence[str],
    *,
    seeds: Sequence[int],
    methods: Sequence[str] | None = None,
    skip_pipelines: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
    input_roots: dict[str, str] | None = None,
    template: Path = ROOT,
    workdir: Path | None = None,
    output: Path = RESULTS / "quality.json",
    docs: Path | None = DOCS,
    merge_methods: bool = False,
) -> dict[str, Any]:
    """Run the datasets, merge them into ``output`` (other datasets' entries
    stay) and rewrite the table in ``docs``."""
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise ValueError(f"--datasets: unknown {unknown}; known: {list(DATASETS)}")
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    chosen, rows = select_methods(methods, skip_pipelines)
    results: dict[str, Any] = {"benchmark": "quality", "datasets": {}}
    if output.exists():
        results = json.loads(output.read_text())
    results["env"] = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    own_tmp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="bench_quality_")) if own_tmp else workdir
    previous = os.environ.get("HGT_METHODS")
    try:
        for name in datasets:
            entry = run_dataset(
                name,
                template=template,
                workdir=work,
                methods=chosen,
                rows=rows,
                seeds=seeds,
                extra=extra or {},
                input_root=(input_roots or {}).get(name),
            )
            if entry["status"] == "skipped":
                print(f"bench_quality: {name} skipped: {entry['reason']}", flush=True)
                if results["datasets"].get(name, {}).get("status") == "done":
                    continue  # keep the earlier results
            if merge_methods:
                entry = merge_entry(results["datasets"].get(name), entry)
            results["datasets"][name] = entry
            write_json(results, output)
    finally:
        if previous is None:
            os.environ.pop("HGT_METHODS", None)
        else:
            os.environ["HGT_METHODS"] = previous
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    write_json(results, output)
    if docs is not None:
        write_docs(results, docs)
    return results


def _input_roots(items: Sequence[str]) -> dict[str, str]:
    bad = [i for i in items if "=" not in i or i.split("=")[0] not in DATASETS]
    if bad:
        raise ValueError(
            f"--input-root must be DATASET=PATH with DATASET in {list(DATASETS)}, "
            f"got {bad}"
        )
    return dict(item.split("=", 1) for item in items)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="fake,dblp,yelp")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--methods", default=None, help="methods and reference rows (default: all)"
    )
    parser.add_argument(
        "--skip-pipelines",
        default="",
        help="training pipelines not to run (e.g. hgt): their methods are left out",
    )
    parser.add_argument(
        "--params", default=None, help="extra runtime parameters, as kedro --params"
    )
    parser.add_argument(
        "--input-root",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help="input files of an ingested dataset (sets its ingestion.root)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep runs here")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--no-docs", action="store_true", help="leave docs/hgt.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep a dataset's earlier rows of the methods not run now (each "
        "listed under kept_from with its run's commit)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the fake data, no HGT, seeds 0,1 -> quality_quick.json",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    datasets, seeds, skip = (
        split(args.datasets),
        split(args.seeds),
        split(args.skip_pipelines),
    )
    output = args.output or RESULTS / "quality.json"
    docs: Path | None = None if args.no_docs else DOCS
    extra = parse_params(args.params)
    if args.quick:
        datasets, seeds, skip = ["fake"], ["0", "1"], [*skip, "hgt"]
        output = args.output or RESULTS / "quality_quick.json"
        docs = None
        extra = merge(parse_params(QUICK_PARAMS), extra)
    results = run(
        datasets,
        seeds=[int(s) for s in seeds],
        methods=split(args.methods) if args.methods else None,
        skip_pipelines=skip,
        extra=extra,
        input_roots=_input_roots(args.input_root),
        workdir=args.workdir,
        output=output,
        docs=docs,
        merge_methods=args.merge,
    )
    print(markdown(results))
    print(f"wrote {output}" + (f" and {docs}" if docs else ""))


if __name__ == "__main__":
    sys.exit(main())
