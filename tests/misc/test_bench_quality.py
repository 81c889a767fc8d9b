"""benchmarks/bench_quality.py on tiny data: the JSON shape, std over the
training seeds, the docs table, a skipped environment, and the helpers."""

from __future__ import annotations

import json
import shutil
import statistics
import sys

import pytest

from tests.conftest import (
    REPO,
    KedroProject,
    configure_tiny_default_run,
    tiny_generation_params,
)

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_quality  # noqa: E402


def test_helpers():
    assert bench_quality.parse_params("a.b=1,c=x") == {"a": {"b": 1}, "c": "x"}
    with pytest.raises(ValueError, match="key=value"):
        bench_quality.parse_params("a.b")
    params = {
        "data_generation": {"seed": 42},
        "graph": {"split": {"seed": 0}},
        "evaluation": {"seed": 0, "label_protocol": {"seed": 0}},
        "twhin": {"seed": 0, "dim": 64},
        "hgt": {"train": {"seed": 0}, "inference": {"seed": 0}},
        "clustering": {"seed": 0},
    }
    names = bench_quality.seed_parameters(params)
    assert names == [
        "clustering.seed",
        "hgt.inference.seed",
        "hgt.train.seed",
        "twhin.seed",
    ]
    assert bench_quality.seed_overrides(names, 3) == {
        "clustering": {"seed": 3},
        "hgt": {"inference": {"seed": 3}, "train": {"seed": 3}},
        "twhin": {"seed": 3},
    }
    s = bench_quality.summarise([1.0, 2.0, None, 4.0])
    assert s["mean"] == pytest.approx(7 / 3)
    assert s["std"] == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))
    assert bench_quality.summarise([1.0])["std"] is None
    with pytest.raises(ValueError, match="unknown"):
        bench_quality.select_methods(["nope"], ())
    assert bench_quality._input_roots(["dblp=/x=y"]) == {"dblp": "/x=y"}
    with pytest.raises(ValueError, match="DATASET=PATH"):
        bench_quality._input_roots(["dblp"])
    chosen, rows = bench_quality.select_methods(None, ("hgt",))
    assert not any(m.startswith("hgt") for m in chosen)
    assert "oracle" in rows and "ease" in rows


@pytest.mark.slow
def test_aggregate_keeps_the_tuned_rows_choices():
    def run(seed, m, w):
        return {
            "seed": seed,
            "records": [
                {"method": "a", "recall@50": 0.1 * seed, "m_neighbors": 50},
                {
                    "method": "a_tuned",
                    "recall@50": 0.2,
                    "m_neighbors": m,
                    "popularity_weight": w,
                    "valid_recall": {"m=10,w=0": 0.1},
                },
            ],
        }

    out = bench_quality.aggregate([run(0, 10, 0.3), run(1, 300, 0.1)])
    assert out["a_tuned"]["choices"] == {
        "m_neighbors": [10, 300],
        "popularity_weight": [0.3, 0.1],
    }
    assert "choices" not in out["a"]  # a plain row's m is a setting
    assert "m_neighbors" not in out["a"]["metrics"]


def test_git_dirty_ignores_the_benchmarks_own_outputs(tmp_path):
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for path in (*bench_quality.OWN_OUTPUTS, "src.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("0\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    for path in bench_quality.OWN_OUTPUTS:  # written by an earlier dataset
        (tmp_path / path).write_text("1\n")
    assert bench_quality.git_commit(tmp_path)["git_dirty"] is False
    (tmp_path / "src.py").write_text("1\n")
    assert bench_quality.git_commit(tmp_path)["git_dirty"] is True


def test_bench_quality_on_tiny_data(tmp_path):
    template = tmp_path / "template"
    template.mkdir()
    shutil.copytree(REPO / "conf", template / "conf")
    shutil.rmtree(template / "conf" / "yelp", ignore_errors=True)
    shutil.copy(REPO / "pyproject.toml", template / "pyproject.toml")
    project = KedroProject(template)
    project.set_params(
        "parameters_data_generation.yml", "data_generation", tiny_generation_params()
    )
    configure_tiny_default_run(project)
    output = tmp_path / "quality.json"
    docs = tmp_path / "hgt.md"
    methods = ["twhin_kmeans", "twhin_som", "count_profile_kmeans"]
    results = bench_quality.run(
        ["fake", "dblp", "yelp"],
        seeds=[0, 1],
        methods=[*methods, "popularity", "ease", "item_knn", "oracle"],
        template=template,
        workdir=tmp_path / "work",
        output=output,
        docs=docs,
    )
    saved = json.loads(output.read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["datasets"]["yelp"]["status"] == "skipped"
    assert "conf/yelp does not exist" in saved["datasets"]["yelp"]["reason"]
    dblp = saved["datasets"]["dblp"]  # conf/dblp exists, its files do not here
    assert dblp["status"] == "skipped" and "input files not found" in dblp["reason"]
    fake = saved["datasets"]["fake"]
    assert fake["status"] == "done" and fake["seeds"] == [0, 1]
    assert "twhin.seed" in fake["seed_parameters"]
    assert "clustering.seed" in fake["seed_parameters"]
    assert not any(
        n.startswith(("graph.", "data_generation.")) for n in fake["seed_parameters"]
    )
    assert "hgt" not in fake["pipelines"]
    assert set(fake["methods"]) == {
        *methods,
        *(f"{m}_tuned" for m in methods),
        *(f"{m}_c2i" for m in methods),
        "popularity",
        "ease",
        "item_knn",
        "oracle",
    }
    assert len(fake["runs"]) == 2 and all(r["wall_seconds"] > 0 for r in fake["runs"])
    twhin = fake["methods"]["twhin_kmeans"]
    assert twhin["seeds"] == [0, 1]
    recall = twhin["metrics"]["recall@50"]
    assert recall["n"] == 2
    # the std is the sample std of the two runs, and the seeds changed the runs
    assert recall["std"] == pytest.approx(statistics.stdev(recall["values"]))
    assert recall["values"][0] != recall["values"][1]
    assert twhin["metrics"]["train_seconds"]["mean"] > 0
    # seed-free references do not move; the oracle closes its own gap
    assert fake["methods"]["popularity"]["metrics"]["recall@50"]["std"] == 0
    assert fake["methods"]["oracle"]["metrics"]["gap_closed@50"]["mean"] == 1.0
    assert fake["methods"]["popularity"]["metrics"]["gap_closed@50"]["mean"] == 0.0
    # twhin_som shares twhin_kmeans's embedding
    assert fake["methods"]["twhin_som"]["notes"]["same_embedding_as"] == [
        "twhin_kmeans"
    ]
    text = docs.read_text()
    assert bench_quality.MARK_BEGIN in text and "| twhin_kmeans |" in text
    assert "**yelp**: skipped" in text
    # a second write keeps what surrounds the block
    docs.write_text("# mine\n\nintro\n\n" + text.split("## Quality")[1] + "\nafter\n")
    bench_quality.write_docs(saved, docs)
    again = docs.read_text()
    assert again.startswith("# mine") and again.rstrip().endswith("after")


def test_merge_keeps_the_methods_not_rerun_with_their_commit():
    old = {
        "status": "done",
        "git_commit": "aaa",
        "git_dirty": False,
        "started": "t0",
        "methods": {"twhin_kmeans": {"v": 1}, "hgt_kmeans": {"v": 2}},
    }
    new = {"status": "done", "git_commit": "bbb", "methods": {"hgt_kmeans": {"v": 3}}}
    merged = bench_quality.merge_entry(old, new)
    assert merged["methods"] == {"hgt_kmeans": {"v": 3}, "twhin_kmeans": {"v": 1}}
    assert merged["git_commit"] == "bbb"
    assert merged["kept_from"] == {
        "twhin_kmeans": {"git_commit": "aaa", "git_dirty": False, "started": "t0"}
    }
    # merging again keeps the first provenance; rerunning a kept method drops it
    again = bench_quality.merge_entry(merged, {**new, "git_commit": "ccc"})
    assert again["kept_from"]["twhin_kmeans"]["git_commit"] == "aaa"
    rerun = {"status": "done", "methods": {"twhin_kmeans": {"v": 9}}}
    assert "twhin_kmeans" not in bench_quality.merge_entry(again, rerun)["kept_from"]
    # nothing to merge with: the new entry as it is
    assert bench_quality.merge_entry(None, new) is new
    assert bench_quality.merge_entry({"status": "skipped"}, new) is new


def test_hgt_with_a_twhin_warm_start_runs_twhin_first():
    params = {"hgt": {"warm_start": "twhin"}}
    _, per_seed = bench_quality._pipelines_for(params, ["hgt_kmeans"])
    assert per_seed.index("twhin") < per_seed.index("hgt")
    _, cold = bench_quality._pipelines_for(
        {"hgt": {"warm_start": None}}, ["hgt_kmeans"]
    )
    assert "twhin" not in cold
