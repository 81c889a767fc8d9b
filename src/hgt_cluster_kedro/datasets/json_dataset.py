"""``JSONDataset``: kedro-datasets' JSON file, loading complete versions only."""

from __future__ import annotations

from kedro_datasets.json import JSONDataset as _KedroJSONDataset

from ._versions import CompleteVersionsMixin


class JSONDataset(CompleteVersionsMixin, _KedroJSONDataset):
    """``kedro_datasets.json.JSONDataset`` whose unpinned loads skip the
    versions of a node that did not save all its outputs
    (:class:`~hgt_cluster_kedro.datasets._versions.CompleteVersionsMixin`).
    Same arguments as the base class."""
