"""Typed parameter sections: defaults in one place, errors that name the key,
and the rules across sections (no Kedro session)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hgt_cluster_kedro.config import (
    SECTIONS,
    HGTParams,
    HGTSomJointParams,
    ParameterError,
    check_parameters,
    validate_section,
)
from tests.conftest import tiny_generation_params

REPO = Path(__file__).resolve().parents[2]


def base_params() -> dict[str, Any]:
    """conf/base parameters with ``${globals:data_root}`` as the base run sees it."""
    params: dict[str, Any] = {}
    for path in sorted((REPO / "conf/base").glob("parameters_*.yml")):
        text = path.read_text().replace("${globals:data_root}", "data")
        params.update(yaml.safe_load(text))
    return params


def _defaults_restated(raw: Any, default: Any, path: str) -> list[str]:
    if isinstance(raw, dict) and isinstance(default, dict):
        out = []
        for key, value in raw.items():
            if key not in default:
                out.append(f"{path}.{key}: no model default")
            else:
                out += _defaults_restated(value, default[key], f"{path}.{key}")
        return out
    if raw != default and not (
        isinstance(default, float) and isinstance(raw, int | float) and raw == default
    ):
        return [f"{path}: YAML {raw!r} != model default {default!r}"]
    return []


@pytest.mark.parametrize(
    "section",
    ["run", "twhin", "hgt", "hgt_som_joint", "count_profile", "clustering", "som"]
    + ["evaluation"],
)
def test_base_yaml_restates_the_model_defaults(section):
    """One default per parameter: the model's; base YAML may only restate it."""
    raw = base_params()[section]
    default = SECTIONS[section]().model_dump(by_alias=True, mode="json")
    assert _defaults_restated(raw, default, section) == []


def test_graph_and_generator_defaults_restated():
    raw = base_params()
    graph = validate_section("graph", raw["graph"]).model_dump(by_alias=True)
    for part in ("validation", "split", "partition"):
        default = type(getattr(validate_section("graph", raw["graph"]), part))()
        assert (
            _defaults_restated(
                raw["graph"][part], default.model_dump(), f"graph.{part}"
            )
            == []
        ), part
    assert graph["schema"]["user_type"] == "user"


def _with(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    params = copy.deepcopy(params)
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return params


#: one misspelt key per section, with the name the error must suggest
TYPOS = {
    "run": ("run.sorce", "source"),
    "data_generation": ("data_generation.n_user", "n_users"),
    "graph": ("graph.partition.num_part", "num_parts"),
    "twhin": ("twhin.epoch", "epochs"),
    "hgt": ("hgt.train.epoch", "epochs"),
    "hgt_som_joint": ("hgt_som_joint.train.objectives.som.num_centre", "num_centres"),
    "count_profile": ("count_profile.max_dims", "max_dim"),
    "clustering": ("clustering.kk", "k"),
    "som": ("som.sigm", "sigma"),
    "evaluation": ("evaluation.m_neighbor", "m_neighbors"),
}


@pytest.mark.parametrize("section", sorted(TYPOS))
def test_a_typo_in_every_section_names_the_key_and_the_nearest_name(section):
    key, suggestion = TYPOS[section]
    params = _with(base_params(), key, 3)
    with pytest.raises(ParameterError) as err:
        check_parameters(params, params, source="data_generation")
    assert f"{key}: unknown parameter; did you mean {suggestion!r}?" in str(err.value)


def test_ingestion_typo_names_the_key():
    raw = {"edges": {"e": {"file": {"path": "e.csv"}, "src": "a", "dst": "b"}}}
    raw["nodez"] = {}
    with pytest.raises(
        ParameterError, match=r"ingestion\.nodez: .*did you mean 'nodes'"
    ):
        validate_section("ingestion", raw)


def test_a_misspelt_section_name_is_an_error():
    params = base_params()
    params["clusterng"] = {"k": 3}
    with pytest.raises(ParameterError, match="clusterng: unknown parameter section; "):
        check_parameters(params, ["clustering"])


def test_a_bad_value_names_the_full_key():
    with pytest.raises(ParameterError) as err:
        HGTParams.model_validate({"train": {"epochs": "abc"}})
    assert str(err.value).splitlines()[1].strip() == (
        "hgt.train.epochs: Input should be a valid integer, unable to parse string "
        "as an integer (got 'abc')"
    )


def test_in_batch_negatives_need_a_big_enough_batch():
    """Formerly raised silently from 32 to 64 by the trainer."""
    with pytest.raises(ParameterError, match=r"hgt\.train: batch_size=32 is too small"):
        HGTParams.model_validate({"train": {"batch_size": 32, "num_neg": 63}})
    HGTParams.model_validate({"train": {"batch_size": 64, "num_neg": 63}})
    HGTParams.model_validate(
        {"train": {"batch_size": 32, "num_neg": 63, "neg_mode": "uniform"}}
    )
    params = _with(base_params(), "hgt_som_joint.train.batch_size", 32)
    with pytest.raises(ParameterError, match=r"hgt_som_joint\.train: batch_size=32"):
        check_parameters(params, ["hgt", "hgt_som_joint"])


def test_joint_training_overrides_hgt_train():
    hgt = HGTParams.model_validate({"train": {"lr": 0.01, "hidden": 32}})
    objectives = {"link": {}, "som": {"num_centres": 4}}
    joint = HGTSomJointParams.model_validate(
        {"train": {"lr": 0.002, "objectives": objectives}}
    )
    cfg = joint.train_config(hgt)
    assert (cfg.lr, cfg.hidden, cfg.objectives.som.num_centres) == (0.002, 32, 4)
    default = HGTSomJointParams().train_config(HGTParams())
    assert default.objectives.som.num_centres == 16
    with pytest.raises(ParameterError, match=r"hgt_som_joint\.train\.lr: Input"):
        HGTSomJointParams.model_validate(
            {"train": {"lr": "x", "objectives": objectives}}
        ).train_config(hgt)
    with pytest.raises(ParameterError, match="objectives: required parameter"):
        HGTSomJointParams.model_validate({"train": {"lr": 0.002}})
    with pytest.raises(ParameterError, match="must include the joint SOM"):
        HGTSomJointParams.model_validate({"train": {"objectives": {"link": {}}}})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("clustering.k", 500, r"clustering\.k=500 is larger than the 400 users"),
        ("som.rows", 50, r"som\.rows x som\.cols = 500 units is more than the 400"),
        (
            "hgt_som_joint.train.objectives.som.num_centres",
            401,
            r"num_centres=401 is larger than the 400 users",
        ),
        (
            "graph.partition.num_parts",
            5000,
            r"num_parts=5000 is larger than the 1000 nodes",
        ),
        ("evaluation.label_protocol.k", 401, r"label_protocol\.k=401 is larger"),
        ("count_profile.metapath", ["share_not"], r"did you mean 'share_note'"),
        ("twhin.relations", ["follow"], r"twhin\.relations: 'follow' is not"),
    ],
)
def test_rules_across_sections(key, value, message):
    params = _with(base_params(), "data_generation", tiny_generation_params())
    params = _with(params, key, value)
    with pytest.raises(ParameterError, match=message):
        check_parameters(params, params, source="data_generation")
    # without a source of known size the counts are not checked
    if "metapath" not in key and "relations" not in key:
        check_parameters(params, params, source=None)


def test_schema_that_the_generator_cannot_fill_names_the_pipeline_and_the_fix():
    params = base_params()
    schema = params["graph"]["schema"]
    schema["node_types"]["author"] = {"id_column": "author_id"}
    schema["relations"]["writes"] = {
        "src": "author",
        "dst": "note",
        "src_column": "author_id",
        "dst_column": "note_id",
    }
    with pytest.raises(ParameterError) as err:
        check_parameters(params, ["graph"], source="data_generation")
    text = str(err.value)
    assert "node types ['author'] and relations ['writes']" in text
    assert "pipeline 'data_generation'" in text and "add an `ingestion` section" in text
    check_parameters(params, ["graph"], source=None)


def test_missing_section_gets_the_model_defaults_or_a_clear_error():
    params = base_params()
    del params["clustering"]
    assert check_parameters(params, ["clustering"])["clustering"].k == 16
    del params["graph"]
    with pytest.raises(ParameterError, match="graph: section missing"):
        check_parameters(params, ["graph"])
