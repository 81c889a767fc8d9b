"""Count-profile baseline: metapath counts, row normalisation, SVD reduction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hgt_cluster_kedro.graph import HeteroCSR
from hgt_cluster_kedro.models.count_profile import count_profile, metapath_counts


def _graph() -> HeteroCSR:
    # authors 0, 1, 2 (2 writes nothing); papers 0..3; venues 0, 1
    writes = (torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 2, 3]))
    cites = (torch.tensor([0]), torch.tensor([3]))  # a second author -> paper relation
    in_venue = (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1]))
    follows = (torch.tensor([2]), torch.tensor([1]))  # author -> venue
    return HeteroCSR.from_coo(
        {"author": 3, "paper": 4, "venue": 2},
        {
            ("author", "writes", "paper"): writes,
            ("author", "cites", "paper"): cites,
            ("paper", "in_venue", "venue"): in_venue,
            ("author", "follows", "venue"): follows,
        },
    )


def test_counts_and_row_normalised_profile():
    csr = _graph()
    counts, types = metapath_counts(csr, "author", ["writes", "in_venue"])
    assert types == ["author", "paper", "venue"]
    assert counts.toarray().tolist() == [[2, 1], [0, 1], [0, 0]]
    prof = count_profile(csr, "author", ["writes", "in_venue"])
    np.testing.assert_allclose(prof.matrix, [[2 / 3, 1 / 3], [0, 1], [0, 0]], rtol=1e-6)
    assert prof.matrix.dtype == np.float32
    assert (prof.profile_dim, prof.empty_rows, prof.reduced) == (2, 1, False)


def test_summed_step_and_reverse_relations():
    csr = _graph()
    counts, _ = metapath_counts(csr, "author", [["writes", "cites"], "in_venue"])
    assert counts.toarray().tolist() == [[2, 2], [0, 1], [0, 0]]
    # author -> paper -> author (co-authorship through rev_writes)
    counts, types = metapath_counts(csr, "author", ["writes", "rev_writes"])
    assert types == ["author", "paper", "author"]
    assert counts.toarray().tolist() == [[3, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_svd_above_max_dim_is_seeded():
    rng = np.random.default_rng(0)
    src = torch.from_numpy(rng.integers(0, 40, 400))
    dst = torch.from_numpy(rng.integers(0, 30, 400))
    csr = HeteroCSR.from_coo({"u": 40, "i": 30}, {("u", "r", "i"): (src, dst)})
    a = count_profile(csr, "u", ["r", "rev_r"], max_dim=8, seed=3)
    b = count_profile(csr, "u", ["r", "rev_r"], max_dim=8, seed=3)
    assert a.matrix.shape == (40, 8) and a.reduced and a.profile_dim == 40
    assert 0 < a.explained_variance <= 1
    np.testing.assert_array_equal(a.matrix, b.matrix)


def test_bad_metapaths():
    csr = _graph()
    with pytest.raises(ValueError, match="unknown relation 'wrote'; known"):
        metapath_counts(csr, "author", ["wrote"])
    with pytest.raises(
        ValueError, match="'in_venue' starts at 'paper', but the path is at 'author'"
    ):
        metapath_counts(csr, "author", ["in_venue"])
    with pytest.raises(ValueError, match="at least one relation"):
        metapath_counts(csr, "author", [])
    with pytest.raises(ValueError, match="end at different node types"):
        metapath_counts(csr, "author", [["writes", "follows"]])
    with pytest.raises(ValueError, match="max_dim must be >= 1"):
        count_profile(csr, "author", ["writes"], max_dim=0)
