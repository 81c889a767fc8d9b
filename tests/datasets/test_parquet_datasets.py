"""The project's parquet datasets: round trips, versions, atomic saves, previews."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io.core import DatasetError, Version

from hgt_cluster_kedro.datasets import ParquetPartsDataset, ParquetTableSetDataset


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": range(10), "b": [f"x{i}" for i in range(10)]})


def test_parts_round_trip_pandas_and_dask(tmp_path, frame):
    import dask.dataframe as dd

    ds = ParquetPartsDataset(filepath=str(tmp_path / "t"))
    ds.save(dd.from_pandas(frame, npartitions=3))
    assert len(list((tmp_path / "t").glob("part-*.parquet"))) == 3
    pd.testing.assert_frame_equal(ds.load(), frame, check_dtype=False)
    lazy = ParquetPartsDataset(filepath=str(tmp_path / "t"), backend="dask").load()
    assert lazy.npartitions == 3
    assert ds.preview(2)["data"] == [["0", "x0"], ["1", "x1"]]


def test_table_set_versions_and_preview(tmp_path, frame):
    path = str(tmp_path / "set")
    ParquetTableSetDataset(filepath=path, version=Version(None, "v1")).save(
        {"x": frame, "y": frame.head(3)}
    )
    ParquetTableSetDataset(filepath=path, version=Version(None, "v2")).save(
        {"x": frame.head(1)}
    )
    latest = ParquetTableSetDataset(filepath=path, version=Version(None, None))
    assert set(latest.load()) == {"x"}
    old = ParquetTableSetDataset(filepath=path, version=Version("v1", None)).load()
    assert len(old["y"]) == 3
    preview = ParquetTableSetDataset(
        filepath=path, version=Version("v1", None)
    ).preview()
    assert preview["columns"] == ["table", "rows", "parts", "columns"]
    assert preview["data"][0][:2] == ["x", 10]


def test_table_set_selects_tables_and_names_missing(tmp_path, frame):
    ds = ParquetTableSetDataset(filepath=str(tmp_path / "s"))
    ds.save({"x": frame})
    with pytest.raises(DatasetError, match=r"tables \['zz'\] not found"):
        ParquetTableSetDataset(filepath=str(tmp_path / "s"), tables=["zz"]).load()


def test_failed_save_leaves_nothing_behind(tmp_path, frame):
    ds = ParquetTableSetDataset(filepath=str(tmp_path / "s"))
    bad = {"ok": frame, "bad": pd.DataFrame({"c": [object()]})}
    with pytest.raises(DatasetError):
        ds.save(bad)
    assert list(tmp_path.iterdir()) == [] or not any(
        p.is_file() for p in tmp_path.rglob("*")
    )


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="backend must be"):
        ParquetPartsDataset(filepath=str(tmp_path), backend="spark")
    with pytest.raises(DatasetError, match="non-empty dict"):
        ParquetTableSetDataset(filepath=str(tmp_path / "s")).save({})
