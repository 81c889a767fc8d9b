"""Ingestion of user-item logs as a new user brings them: implied ids checked
against the ids present (refuse / compact / dense, absurd ids), only used columns
validated (na_values / fill), categorical columns, wide 0/1 flag tables to
edges, decode errors at their line and byte offset, ASCII-only numerals.

Every error test checks the file, line and column the message names."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from hgt_cluster_kedro.datasets import ParquetTableSetDataset
from hgt_cluster_kedro.graph import GraphSchema, index_tables
from hgt_cluster_kedro.ingestion import IngestionConfig, IngestionError, ingest
from hgt_cluster_kedro.ingestion.readers import locate_decode_error

RATINGS = "user,item,rating,comment\n0,0,4,good\n1,0,3,\n2,1,5,fine\n"


def _schema(
    user_features: list[str] | None = None,
    genre: bool = False,
    genre_weight: bool = False,
    genre_time: bool = False,
    genre_reversed: bool = False,
) -> GraphSchema:
    node_types = {
        "user": {"id_column": "user_id", "features": user_features or []},
        "item": {"id_column": "item_id"},
    }
    relations = {
        "rated": {
            "src": "user",
            "dst": "item",
            "src_column": "user_id",
            "dst_column": "item_id",
            "weight_column": "rating",
        }
    }
    if genre:
        node_types["genre"] = {"id_column": "genre_id"}
        ends = ("genre", "item") if genre_reversed else ("item", "genre")
        relations["has_genre"] = {
            "src": ends[0],
            "dst": ends[1],
            "src_column": f"{ends[0]}_id",
            "dst_column": f"{ends[1]}_id",
            "weight_column": "w" if genre_weight else None,
            "time_column": "t" if genre_time else None,
        }
    return GraphSchema.model_validate(
        {
            "node_types": node_types,
            "relations": relations,
            "user_type": "user",
            "item_type": "item",
            "target_relations": ["rated"],
        }
    )


def _config(root: Path, nodes: dict | None = None, **sections) -> IngestionConfig:
    cfg = {
        "root": str(root),
        "nodes": nodes or {},
        "edges": {
            "rated": {
                "file": {"path": "ratings.csv"},
                "src": "user",
                "dst": "item",
                "weight": "rating",
            }
        },
    }
    cfg.update(sections)
    return IngestionConfig.model_validate(cfg)


def _run(root: Path, schema: GraphSchema | None = None, nodes=None, **sections):
    return ingest(_config(root, nodes, **sections), schema or _schema())


def _at(path: Path, line: int | str, column: str | None, message: str) -> str:
    """Regex of an error at ``path``, ``line`` and ``column``."""
    where = f"{re.escape(str(path))}, (line|row) {line}"
    if column is not None:
        where += re.escape(f", column {column!r}")
    return f"^{where}: {message}"


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- implied ids


def test_gap_in_implied_ids_is_refused_with_file_line_and_size(tmp_path):
    path = _write(tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n5,0,3\n1,1,5\n")
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            3,
            "user",
            r"user id 5 is the largest id: with implied ids \(count: null\) it makes "
            r"0\.\.5 the user nodes, but 3 of these 6 ids appear in no file "
            r"\(e\.g\. \[2, 3, 4\]\)\. Set ingestion\.nodes\.user\.ids: compact",
        ),
    ):
        _run(tmp_path)


def test_compact_renumbers_and_keeps_the_file_ids(tmp_path):
    _write(tmp_path, "ratings.csv", "user,item,rating\n30000,7,4\n-4,7,3\n20,9,5\n")
    _write(tmp_path, "truth.csv", "uid,group\n20,1\n30000,0\n-4,1\n")
    out = _run(
        tmp_path,
        nodes={
            "user": {"ids": "compact"},
            "item": {"ids": "compact", "original_id_column": "item_key"},
        },
        ground_truth={
            "file": {"path": "truth.csv"},
            "node_type": "user",
            "id": "uid",
            "label": "group",
        },
    )
    users = out.nodes["user"]
    assert users.to_dict("list") == {
        "user_id": [0, 1, 2],
        "original_id": [-4, 20, 30000],
    }
    assert out.nodes["item"].to_dict("list") == {"item_id": [0, 1], "item_key": [7, 9]}
    rated = out.edges["rated"]
    assert rated["user_id"].tolist() == [2, 0, 1]
    assert rated["item_id"].tolist() == [0, 0, 1]
    # the file's ids, mapped back, are the file's rows
    back = users.set_index("user_id")["original_id"].loc[rated["user_id"]].tolist()
    assert back == [30000, -4, 20]
    assert out.ground_truth.to_dict("list") == {"id": [1, 2, 0], "label": [1, 0, 1]}
    assert out.stats["isolated"] == {"user": 0, "item": 0}


def test_dense_keeps_the_gap_and_reports_nodes_without_edges(tmp_path, caplog):
    _write(tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n5,0,3\n1,1,5\n")
    with caplog.at_level(logging.WARNING, logger="hgt_cluster_kedro.ingestion"):
        out = _run(tmp_path, nodes={"user": {"ids": "dense"}})
    assert out.nodes["user"]["user_id"].tolist() == list(range(6))
    assert out.stats["isolated"]["user"] == 3
    assert "ids: dense keeps 3 ids that appear in no file" in caplog.text
    assert "3 of 6 user nodes have no edge in any relation (e.g. [2, 3, 4])" in (
        caplog.text
    )


@pytest.mark.parametrize("policy", ["refuse", "dense"])
@pytest.mark.parametrize(
    ("stray", "line_of"),
    [
        ("3000000", 1500),
        ("10000000000", 7),
        ("9000000000000000000", 1999),
        ("9223372036854775807", 2),
    ],
)
def test_absurd_id_stops_before_any_allocation(tmp_path, policy, stray, line_of):
    rows = [f"{u},{u % 7},1" for u in range(2000)]
    rows[line_of - 2] = f"{stray},0,1"
    path = _write(tmp_path, "ratings.csv", "user,item,rating\n" + "\n".join(rows))
    start = time.perf_counter()
    with pytest.raises(IngestionError) as err:
        _run(tmp_path, nodes={"user": {"ids": policy}})
    assert time.perf_counter() - start < 5.0
    msg = str(err.value)
    assert msg.startswith(f"{path}, line {line_of}, column 'user': user id {stray} ")
    if policy == "dense":
        assert (
            f"would make {int(stray) + 1:,} implied nodes for 2,000 distinct ids "
            "present, more than ingestion.nodes.user.max_id_ratio=10 times"
        ) in msg
    else:
        assert f"but {int(stray) + 1 - 2000:,} of these {int(stray) + 1:,} ids" in msg


def test_max_id_and_int64_range(tmp_path):
    path = _write(tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n1,0,3\n12,1,5\n")
    with pytest.raises(
        IngestionError,
        match=_at(
            path, 4, "user", r"user id 12 is above ingestion\.nodes\.user\.max_id=10$"
        ),
    ):
        _run(tmp_path, nodes={"user": {"max_id": 10}})
    _write(
        tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n99999999999999999999,0,3\n"
    )
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            3,
            "user",
            r"id '99999999999999999999' is outside the int64 range",
        ),
    ):
        _run(tmp_path)
    _write(tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n1e10,0,3\n")
    with pytest.raises(
        IngestionError, match=_at(path, 3, "user", r"id '1e10' is not an integer$")
    ):
        _run(tmp_path)


def test_negative_implied_id_and_declared_count_bound(tmp_path):
    path = _write(tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n-3,0,3\n")
    with pytest.raises(
        IngestionError, match=_at(path, 3, "user", r"user id -3 is negative")
    ):
        _run(tmp_path)
    _write(tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n1,0,3\n")
    with pytest.raises(
        ValueError,
        match=r"ingestion\.nodes\.user\.count=10,000,000,000 is more than "
        r"max_id_ratio=10 times the 2 distinct ids present",
    ):
        _run(tmp_path, nodes={"user": {"count": 10**10}})
    out = _run(tmp_path, nodes={"user": {"count": 4}})  # declared: 2, 3 no edge
    assert out.stats["isolated"]["user"] == 2


def test_nodes_of_a_table_without_edges_are_reported(tmp_path, caplog):
    _write(tmp_path, "ratings.csv", RATINGS)
    _write(tmp_path, "users.csv", "id,age\n0,30\n1,40\n2,50\n7,60\n9,70\n")
    with caplog.at_level(logging.WARNING, logger="hgt_cluster_kedro.ingestion"):
        out = _run(
            tmp_path,
            nodes={"user": {"table": {"path": "users.csv"}, "id": "id"}},
            schema=_schema(["age"]),
        )
    assert out.stats["isolated"]["user"] == 2
    assert "2 of 5 user nodes have no edge in any relation (e.g. [7, 9])" in caplog.text


def test_id_options_are_checked():
    base = {"edges": {"r": {"file": {"path": "a.csv"}, "src": "a", "dst": "b"}}}
    with pytest.raises(ValidationError, match=r"count: 5 declares the ids 0\.\.4"):
        IngestionConfig.model_validate(
            {**base, "nodes": {"a": {"count": 5, "ids": "compact"}}}
        )
    with pytest.raises(ValidationError, match=r"\['ids'\] apply to implied ids"):
        IngestionConfig.model_validate(
            {
                **base,
                "nodes": {"a": {"table": {"path": "a.csv"}, "id": "x", "ids": "dense"}},
            }
        )
    with pytest.raises(ValidationError, match="ids"):
        IngestionConfig.model_validate({**base, "nodes": {"a": {"ids": "sparse"}}})


# ------------------------------------------------- used columns, na_values, fill


def test_missing_values_in_unused_columns_are_not_checked(tmp_path):
    # 'comment' is empty on line 3 and absent on line 4: never used
    _write(
        tmp_path, "ratings.csv", "user,item,rating,comment\n0,0,4,ok\n1,0,3,\n2,1,5\n"
    )
    _write(tmp_path, "users.csv", "id,age,pictureURL\n0,30,a.jpg\n1,40,\n2,50\n")
    out = _run(
        tmp_path,
        nodes={
            "user": {"table": {"path": "users.csv"}, "id": "id", "columns": ["age"]}
        },
        schema=_schema(["age"]),
    )
    assert out.edges["rated"]["rating"].tolist() == [4.0, 3.0, 5.0]
    assert list(out.nodes["user"].columns) == ["user_id", "age"]


def test_kept_column_with_a_missing_value(tmp_path):
    _write(tmp_path, "ratings.csv", RATINGS)
    path = _write(
        tmp_path, "users.csv", "id,age,pictureURL\n0,30,a.jpg\n1,40,\n2,50,c\n"
    )
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            3,
            "pictureURL",
            r"missing value \(empty field\) in a column used by "
            r"ingestion\.nodes\.user\.columns; set fill: \{pictureURL: <value>\}",
        ),
    ):
        _run(
            tmp_path,
            nodes={"user": {"table": {"path": "users.csv"}, "id": "id"}},
            schema=_schema(["age"]),
        )


def test_na_values_and_fill(tmp_path):
    path = _write(
        tmp_path, "ratings.csv", "user,item,rating\n0,0,4\n1,0,NA\n2,1, ?\n0,1,\n"
    )
    rated = {"src": "user", "dst": "item", "weight": "rating"}
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            3,
            "rating",
            r"missing value 'NA' \(na_values\) \(and 2 more line\(s\)\) in a column",
        ),
    ):
        _run(
            tmp_path,
            edges={
                "rated": {
                    **rated,
                    "file": {
                        "path": "ratings.csv",
                        "na_values": {"rating": ["NA", "?"]},
                    },
                }
            },
        )
    out = _run(
        tmp_path,
        edges={
            "rated": {
                **rated,
                "file": {
                    "path": "ratings.csv",
                    "na_values": {"rating": ["NA", "?"]},
                    "fill": {"rating": 2.5},
                },
            }
        },
    )
    assert out.edges["rated"]["rating"].tolist() == [4.0, 2.5, 2.5, 2.5]
    with pytest.raises(
        IngestionError,
        match=re.escape(f"{path}: fill names column(s) ['score'] that the file"),
    ):
        _run(
            tmp_path,
            edges={
                "rated": {
                    **rated,
                    "file": {"path": "ratings.csv", "fill": {"score": 1}},
                }
            },
        )


def test_parquet_nulls_in_a_used_column(tmp_path):
    pd.DataFrame(
        {"user": [0, 1, 2], "item": [0, 0, 1], "rating": [4.0, None, 5.0]}
    ).to_parquet(tmp_path / "ratings.parquet")
    rated = {"src": "user", "dst": "item", "weight": "rating"}
    with pytest.raises(
        IngestionError,
        match=_at(tmp_path / "ratings.parquet", 1, "rating", r"missing value nan"),
    ):
        _run(tmp_path, edges={"rated": {**rated, "file": {"path": "ratings.parquet"}}})
    out = _run(
        tmp_path,
        edges={
            "rated": {
                **rated,
                "file": {"path": "ratings.parquet", "fill": {"rating": 1}},
            }
        },
    )
    assert out.edges["rated"]["rating"].tolist() == [4.0, 1.0, 5.0]
    pd.DataFrame(  # a null id makes the column float: filled, ids again
        {"user": [0, None, 2], "item": [0, 0, 1], "rating": [4.0, 3.0, 5.0]}
    ).to_parquet(tmp_path / "ratings.parquet")
    out = _run(
        tmp_path,
        edges={
            "rated": {**rated, "file": {"path": "ratings.parquet", "fill": {"user": 1}}}
        },
    )
    assert out.edges["rated"]["user_id"].tolist() == [0, 1, 2]


# ------------------------------------------------------------------ categorical


def _users(root: Path, text: str) -> Path:
    _write(root, "ratings.csv", RATINGS)
    return _write(root, "users.csv", text)


def test_categorical_onehot_and_index(tmp_path):
    _users(tmp_path, "id,gender,occupation,zip\n0,M,10,x\n1,F,2,y\n2,M,1,\n")
    schema = _schema(["gender_F", "gender_M", "occupation"])
    out = _run(
        tmp_path,
        schema=schema,
        nodes={
            "user": {
                "table": {"path": "users.csv"},
                "id": "id",
                "columns": [],
                "categorical": {
                    "gender": {"encoding": "onehot"},
                    "occupation": {"encoding": "index"},
                },
            }
        },
    )
    users = out.nodes["user"]
    assert list(users.columns) == ["user_id", "gender_F", "gender_M", "occupation"]
    assert users["gender_M"].tolist() == [1, 0, 1]
    assert users["gender_F"].tolist() == [0, 1, 0]
    assert users["occupation"].tolist() == [2, 1, 0]  # vocabulary sorted as numbers
    assert users["occupation"].dtype == np.int64
    vocab = {"gender": ["F", "M"], "occupation": ["1", "2", "10"]}
    assert out.vocabularies == {"user": vocab}
    assert users.attrs["vocabularies"] == vocab
    # the vocabulary travels with the table through the raw_nodes dataset
    dataset = ParquetTableSetDataset(filepath=str(tmp_path / "raw_nodes"))
    dataset.save(out.nodes)
    assert dataset.load()["user"].attrs["vocabularies"] == vocab
    index_tables(out.nodes, out.edges, schema)  # numeric features for the graph


def test_a_category_read_as_a_feature_says_where_to_declare_it(tmp_path):
    path = _users(tmp_path, "id,gender\n0,M\n1,F\n2,M\n")
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            2,
            "gender",
            r"value 'M' is not a finite number \(a category\? declare it in "
            r"ingestion\.nodes\.user\.categorical\) \(and 2 more line\(s\)\)$",
        ),
    ):
        _run(
            tmp_path,
            schema=_schema(["gender"]),
            nodes={"user": {"table": {"path": "users.csv"}, "id": "id"}},
        )


def test_categorical_vocabulary_prefix_unknown_value_and_fill(tmp_path):
    path = _users(tmp_path, "id,gender\n0,M\n1,\n2,X\n")
    spec = {"categories": ["F", "M", "unknown"], "prefix": "g="}
    node = {"table": {"path": "users.csv"}, "id": "id", "categorical": {"gender": spec}}
    with pytest.raises(
        IngestionError,
        match=_at(path, 3, "gender", r"missing value \(empty field\) in a column used"),
    ):
        _run(tmp_path, schema=_schema(["g=F"]), nodes={"user": node})
    node["table"]["fill"] = {"gender": "unknown"}
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            4,
            "gender",
            r"value 'X' is not one of the categories \['F', 'M', 'unknown'\] "
            r"\(ingestion\.nodes\.user\.categorical\.gender\.categories\)",
        ),
    ):
        _run(tmp_path, schema=_schema(["g=F"]), nodes={"user": node})
    _users(tmp_path, "id,gender\n0,M\n1,\n2,F\n")
    out = _run(tmp_path, schema=_schema(["g=F"]), nodes={"user": node})
    assert list(out.nodes["user"].columns) == ["user_id", "g=F", "g=M", "g=unknown"]
    assert out.nodes["user"]["g=unknown"].tolist() == [0, 1, 0]
    with pytest.raises(ValidationError, match="categorical applies to the columns"):
        _config(tmp_path, {"user": {"categorical": {"gender": {}}}})


# ------------------------------------------------------------ wide to edges


MOVIES = "movie|title|Action|Comedy|Drama|Western\n0|A|1|0|1|0\n1|B|0|0|1|0\n"


def _wide(**changes) -> dict:
    spec = {
        "file": {"path": "movies.psv", "format": "csv", "sep": "|"},
        "id": "movie",
        "columns": ["Action", "Comedy", "Drama", "Western"],
    }
    spec.update(changes)
    return {"has_genre": spec}


def test_wide_flags_become_edges_to_nodes_named_after_the_columns(tmp_path, caplog):
    _write(tmp_path, "ratings.csv", RATINGS)
    _write(tmp_path, "movies.psv", MOVIES)
    schema = _schema(genre=True, genre_weight=True)
    with caplog.at_level(logging.WARNING, logger="hgt_cluster_kedro.ingestion"):
        out = _run(tmp_path, schema=schema, wide_to_edges=_wide())
    genres = out.nodes["genre"]["genre_id"].tolist()
    assert genres == ["Action", "Comedy", "Drama", "Western"]
    edges = out.edges["has_genre"]
    assert edges.to_dict("list") == {
        "item_id": [0, 0, 1],
        "genre_id": ["Action", "Drama", "Drama"],
        "w": [1.0, 1.0, 1.0],
    }
    assert out.stats["isolated"]["genre"] == 2
    assert "2 of 4 genre nodes have no edge" in caplog.text
    assert "['Comedy', 'Western']" in caplog.text
    indexed = index_tables(out.nodes, out.edges, schema)
    assert indexed.num_nodes["genre"] == 4


def test_wide_flags_reversed_relation_and_fill(tmp_path):
    _write(tmp_path, "ratings.csv", RATINGS)
    _write(tmp_path, "movies.psv", MOVIES.replace("0|B|0|0|1|0", "1|B|||1|"))
    schema = _schema(genre=True, genre_reversed=True)
    wide = _wide(row_end="dst")
    wide["has_genre"]["file"]["fill"] = {"Action": 0, "Comedy": 0, "Western": 0}
    out = _run(tmp_path, schema=schema, wide_to_edges=wide)
    assert out.edges["has_genre"].to_dict("list") == {
        "genre_id": ["Action", "Drama", "Drama"],
        "item_id": [0, 0, 1],
    }


def test_wide_flag_that_is_not_0_or_1(tmp_path):
    _write(tmp_path, "ratings.csv", RATINGS)
    path = _write(tmp_path, "movies.psv", MOVIES.replace("1|B|0|0|1|0", "1|B|0|2|1|0"))
    with pytest.raises(
        IngestionError, match=_at(path, 3, "Comedy", r"flag '2' is not 0 or 1$")
    ):
        _run(tmp_path, schema=_schema(genre=True), wide_to_edges=_wide())


def test_wide_flag_nodes_from_a_table_and_configuration_checks(tmp_path):
    _write(tmp_path, "ratings.csv", RATINGS)
    path = _write(tmp_path, "movies.psv", MOVIES)
    _write(tmp_path, "genres.csv", "name,kind\nAction,a\nComedy,c\nDrama,d\n")
    genre = {"table": {"path": "genres.csv"}, "id": "name", "id_type": "str"}
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            1,
            "Western",
            r"flag column 'Western' of ingestion\.wide_to_edges\.has_genre is not a "
            r"node of the genre node table \(ingestion\.nodes\.genre\)",
        ),
    ):
        _run(
            tmp_path,
            schema=_schema(genre=True),
            nodes={"genre": genre},
            wide_to_edges=_wide(columns=["Action", "Western"]),
        )
    out = _run(
        tmp_path,
        schema=_schema(genre=True),
        nodes={"genre": genre},
        wide_to_edges=_wide(columns=["Action", "Drama"]),
    )
    assert out.edges["has_genre"]["genre_id"].tolist() == ["Action", "Drama", "Drama"]
    assert out.nodes["genre"]["genre_id"].tolist() == ["Action", "Comedy", "Drama"]
    with pytest.raises(ValueError, match=r"has_genre: graph\.schema\.relations\.has_"):
        _run(
            tmp_path, schema=_schema(genre=True, genre_time=True), wide_to_edges=_wide()
        )
    with pytest.raises(
        ValueError, match=r"ingestion\.nodes\.genre: the ids of 'genre'"
    ):
        _run(
            tmp_path,
            schema=_schema(genre=True),
            nodes={"genre": {"count": 4}},
            wide_to_edges=_wide(),
        )
    with pytest.raises(ValidationError, match=r"in both edges and wide_to_edges"):
        _config(
            tmp_path,
            wide_to_edges={"rated": _wide()["has_genre"]},
        )


def test_edge_list_to_flag_nodes_uses_their_names(tmp_path):
    _write(tmp_path, "ratings.csv", RATINGS)
    _write(tmp_path, "movies.psv", MOVIES)
    path = _write(tmp_path, "likes.csv", "user,genre\n0,Drama\n1,Horror\n")
    data = _schema(genre=True).model_dump()
    data["relations"]["likes"] = {
        "src": "user",
        "dst": "genre",
        "src_column": "user_id",
        "dst_column": "genre_id",
    }
    schema = GraphSchema.model_validate(data)
    likes = {"file": {"path": "likes.csv"}, "src": "user", "dst": "genre"}
    edges = {
        "rated": _config(tmp_path).edges["rated"].model_dump(),
        "likes": likes,
    }
    with pytest.raises(
        IngestionError,
        match=_at(path, 3, "genre", r"genre id 'Horror' is not in the genre node"),
    ):
        _run(tmp_path, schema=schema, edges=edges, wide_to_edges=_wide())
    _write(tmp_path, "likes.csv", "user,genre\n0,Drama\n1,Western\n")
    out = _run(tmp_path, schema=schema, edges=edges, wide_to_edges=_wide())
    assert out.edges["likes"]["genre_id"].tolist() == ["Drama", "Western"]
    assert out.stats["isolated"]["genre"] == 1  # Comedy


# --------------------------------------------------- encoding and numerals


def test_bad_byte_reported_at_its_line_and_file_offset(tmp_path):
    lines = [b"user,item,rating"] + [b"%d,%d,1" % (i, i % 5) for i in range(600)]
    lines[541] = b"540,0,\xe9"  # line 542: a latin-1 byte in utf-8 text
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / "ratings.csv"
    path.write_bytes(data)
    offset = data.index(b"\xe9")
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            542,
            None,
            rf"not valid utf-8 text: invalid continuation byte, byte\(s\) e9 at byte "
            rf"offset {offset} of the file; set the file's encoding",
        ),
    ):
        _run(tmp_path)
    # line 11, first byte of the line
    lines = [b"user,item,rating"] + [b"%d,0,1" % i for i in range(20)]
    lines[10] = b"\xff9,0,1"
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    offset = data.index(bytes([0xFF]))
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            11,
            None,
            rf"not valid utf-8 text: invalid start byte, byte\(s\) ff at byte offset "
            rf"{offset} ",
        ),
    ):
        _run(tmp_path)


def test_decode_error_offset_across_chunks(tmp_path):
    """A valid 2-byte character split by the 1 MiB chunk boundary, then a bad
    byte further on: the offset counts the carried-over byte once."""
    head = b"a" * ((1 << 20) - 1)
    data = head + "é\n".encode() + b"b\n" * 1000 + b"x\xe9y\n"
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    line, offset, reason, bad = locate_decode_error(path, "utf-8")
    assert (line, offset, bad) == (1002, data.index(b"\xe9y"), b"\xe9")
    assert reason == "invalid continuation byte"
    path.write_bytes(data[:-4] + b"\xc3")  # truncated at the end of the file
    line, offset, reason, bad = locate_decode_error(path, "utf-8")
    assert (line, offset, bad) == (1002, len(data) - 4, b"\xc3")
    path.write_bytes(data[:-4])
    assert locate_decode_error(path, "utf-8") is None


def test_declared_encoding_reads_the_same_bytes(tmp_path):
    (tmp_path / "ratings.csv").write_bytes(
        "user,item,rating,note\n0,0,4,café\n1,1,3,thé\n".encode("latin-1")
    )
    rated = {"src": "user", "dst": "item", "weight": "rating"}
    out = _run(
        tmp_path,
        edges={
            "rated": {**rated, "file": {"path": "ratings.csv", "encoding": "latin-1"}}
        },
    )
    assert out.edges["rated"]["rating"].tolist() == [4.0, 3.0]
    with pytest.raises(ValidationError, match="unknown encoding 'utf-9'"):
        _config(
            tmp_path,
            edges={"rated": {**rated, "file": {"path": "r.csv", "encoding": "utf-9"}}},
        )


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [
        ("５,0,4", "user", "５"),
        ("1,0,４.5", "rating", "４.5"),
        ("1,٣,4", "item", "٣"),
    ],
)
def test_non_ascii_digits_are_rejected(tmp_path, row, column, value):
    path = _write(tmp_path, "ratings.csv", f"user,item,rating\n0,0,4\n{row}\n")
    with pytest.raises(
        IngestionError,
        match=_at(
            path,
            3,
            column,
            re.escape(f"value {value!r} is not written with ASCII characters"),
        ),
    ):
        _run(tmp_path)


def test_non_ascii_digits_in_times(tmp_path):
    schema = _schema()
    schema.relations["rated"].time_column = "ts"
    path = _write(
        tmp_path, "ratings.csv", "user,item,rating,when\n0,0,4,100\n1,0,3,１００\n"
    )
    rated = {"src": "user", "dst": "item", "weight": "rating", "time": "when"}
    with pytest.raises(
        IngestionError,
        match=_at(path, 3, "when", r"value '１００' is not written with ASCII"),
    ):
        _run(
            tmp_path,
            schema=schema,
            edges={"rated": {**rated, "file": {"path": "ratings.csv"}}},
        )


def test_the_documented_example_runs(tmp_path):
    """The YAML of docs/dblp.md's "Ingestion options" section, on tiny files."""
    doc = (Path(__file__).parents[2] / "docs/dblp.md").read_text()
    section = doc[doc.index("## Ingestion options for other datasets") :]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = yaml.safe_load(block)["ingestion"]
    cfg["root"] = str(tmp_path)
    _write(
        tmp_path,
        "movies.csv",
        "movie_id,title,year,studio,rating_class,Action,Comedy,Drama\n"
        "10,A,1999,s2,PG,1,0,1\n11,B,?,s1,R,0,1,0\n",
    )
    _write(tmp_path, "ratings.csv", "user_id,movie_id,weight\n7,10,4\n900,11,\n")
    data = _schema(genre=True).model_dump()
    data["node_types"]["item"]["features"] = ["year", "studio", "rating_class_R"]
    data["node_types"]["movie"] = data["node_types"].pop("item")
    for rel in data["relations"].values():
        for end in ("src", "dst"):
            if rel[end] == "item":
                rel[end], rel[f"{end}_column"] = "movie", "movie_id"
    data["item_type"] = "movie"
    data["relations"]["rated"]["weight_column"] = "weight"
    out = ingest(IngestionConfig.model_validate(cfg), GraphSchema.model_validate(data))
    assert out.nodes["user"].to_dict("list") == {
        "user_id": [0, 1],
        "original_id": [7, 900],
    }
    movies = out.nodes["movie"]
    assert movies["year"].tolist() == [1999.0, 0.0]
    assert movies["studio"].tolist() == [1, 0]
    assert movies[
        ["rating_class_G", "rating_class_PG", "rating_class_R"]
    ].to_numpy().tolist() == [[0, 1, 0], [0, 0, 1]]
    assert out.edges["rated"]["weight"].tolist() == [4.0, 1.0]
    assert out.edges["has_genre"]["genre_id"].tolist() == ["Action", "Drama", "Comedy"]
