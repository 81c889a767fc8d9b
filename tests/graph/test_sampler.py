"""Tests for the neighbour sampler (numba and torch backends)."""

from __future__ import annotations

import importlib.util
import pickle

import pytest
import torch

from hgt_cluster_kedro.graph import sampler as sampler_module
from hgt_cluster_kedro.graph.csr import HeteroCSR, reverse_edge_type
from hgt_cluster_kedro.graph.negatives import UniformNegatives
from hgt_cluster_kedro.graph.sampler import NeighborSampler

from .conftest import edge_set

LIKE = ("user", "like", "note")
REV_LIKE = ("note", "rev_like", "user")

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
BACKENDS = [pytest.param("numba", marks=needs_numba), "torch"]


@pytest.fixture(scope="module", autouse=True)
def _compiled_kernels():
    """Compile (or load from numba's cache) the kernels once per module, so that
    no test pays the JIT compile."""
    if HAVE_NUMBA:
        graph = HeteroCSR.from_coo({"user": 3, "note": 2}, {LIKE: ([0, 1], [1, 0])})
        NeighborSampler(graph, [1, 1], backend="numba").sample_nodes(
            {"user": torch.tensor([0])}
        )


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def global_edges(data, et):
    """Sampled edges of ``et`` as global ``(src, dst)`` ids."""
    ei = data[et].edge_index
    return data[et[0]].n_id[ei[0]], data[et[2]].n_id[ei[1]]


def in_degree(graph: HeteroCSR, et) -> torch.Tensor:
    """In-degree of every destination node of ``et``."""
    _, dst = graph.to_coo(et)
    return torch.bincount(dst, minlength=graph.num_nodes[et[2]])


def assert_edges_exist(graph, data):
    for et in graph.edge_types:
        src, dst = global_edges(data, et)
        assert bool(graph.has_edges(et, src, dst).all()), et


def hop_of_local(data, node_type):
    """Hop at which each local node of ``node_type`` was discovered."""
    counts = torch.tensor(data[node_type].num_sampled_nodes)
    return torch.repeat_interleave(torch.arange(counts.numel()), counts)


def assert_fanouts(graph, data, fanouts, replace=False):
    """Every node expanded at hop h has exactly min(deg, k_h) distinct in-edges
    per relation (k_h draws with replacement); unexpanded nodes have none."""
    for et in graph.edge_types:
        d_type = et[2]
        ei = data[et].edge_index
        hop = hop_of_local(data, d_type)
        n_local = data[d_type].n_id.numel()
        got = torch.bincount(ei[1], minlength=n_local)
        deg = in_degree(graph, et)[data[d_type].n_id]
        ks = torch.tensor(fanouts[et] + [0])[hop]
        if replace:
            expected = torch.where(deg > 0, ks, 0)
        else:
            expected = torch.where(ks < 0, deg, torch.minimum(deg, ks))
            pairs = edge_set(ei[0], ei[1])
            assert len(pairs) == ei.size(1), f"duplicate sampled edges in {et}"
        assert torch.equal(got, expected), et


def test_sampled_edges_exist_with_direction(small_graph, backend):
    sampler = NeighborSampler(small_graph, [4, 3], seed=1, backend=backend)
    seeds = torch.tensor([5, 0, 42, 7, 499])
    data = sampler.sample_nodes({"user": seeds})
    assert_edges_exist(small_graph, data)
    # Seed users receive messages from notes (rev_ relations), notes from users.
    assert data[REV_LIKE].edge_index.size(1) > 0
    assert data[LIKE].edge_index.size(1) > 0
    # Row 0 indexes the source type: rev_like sources are notes.
    ei = data[REV_LIKE].edge_index
    assert int(ei[0].max()) < data["note"].n_id.numel()
    assert int(ei[1].max()) < seeds.numel()  # hop-0 targets are the seeds


def test_fanouts_exact_without_replacement(small_graph, backend):
    fanouts = [4, 3]
    sampler = NeighborSampler(small_graph, fanouts, seed=3, backend=backend)
    data = sampler.sample_nodes({"user": torch.arange(0, 500, 7)})
    per_et = {et: fanouts for et in small_graph.edge_types}
    assert_fanouts(small_graph, data, per_et)
    assert data["user"].num_sampled_nodes[2] > 0  # two hops actually happened


def test_fanouts_with_replacement(small_graph, backend):
    sampler = NeighborSampler(
        small_graph, [3, 2], replace=True, seed=3, backend=backend
    )
    data = sampler.sample_nodes({"note": torch.arange(0, 800, 11)})
    assert_edges_exist(small_graph, data)
    per_et = {et: [3, 2] for et in small_graph.edge_types}
    assert_fanouts(small_graph, data, per_et, replace=True)


def test_all_neighbours_and_per_relation_fanouts(tiny_graph, backend):
    fanouts = {
        ("note", "rev_like", "user"): [-1, 0],
        ("note", "rev_comment", "user"): [2, 0],
        ("user", "like", "note"): [0, 1],
    }
    sampler = NeighborSampler(tiny_graph, fanouts, seed=0, backend=backend)
    data = sampler.sample_nodes({"user": torch.tensor([3, 9, 1])})
    assert_edges_exist(tiny_graph, data)
    full = {et: fanouts.get(et, [0, 0]) for et in tiny_graph.edge_types}
    assert_fanouts(tiny_graph, data, full)
    assert data[("user", "create", "note")].edge_index.shape == (2, 0)
    assert data[("note", "rev_create", "user")].edge_index.shape == (2, 0)


def test_mixed_fanouts_within_a_group(small_graph, backend):
    fanouts = {et: [2, 1] for et in small_graph.edge_types}
    fanouts[("note", "rev_comment", "user")] = [5, -1]
    fanouts[("user", "create", "note")] = [1, 3]
    sampler = NeighborSampler(small_graph, fanouts, seed=2, backend=backend)
    data = sampler.sample_nodes({"user": torch.arange(0, 500, 25)})
    assert_edges_exist(small_graph, data)
    assert_fanouts(small_graph, data, fanouts)


def test_seeds_first_and_n_id_unique(small_graph, backend):
    sampler = NeighborSampler(small_graph, [3, 3], seed=0, backend=backend)
    seeds = torch.tensor([17, 3, 250, 8])
    data = sampler.sample_nodes({"user": seeds, "note": torch.tensor([5])})
    assert torch.equal(data["user"].n_id[:4], seeds)
    assert data["user"].batch_size == 4 and data["note"].batch_size == 1
    assert int(data["note"].n_id[0]) == 5
    for t in ("user", "note"):
        n_id = data[t].n_id
        assert torch.unique(n_id).numel() == n_id.numel()
        assert sum(data[t].num_sampled_nodes) == n_id.numel() == data[t].num_nodes


def test_sampler_state_is_clean_between_batches(small_graph, backend):
    sampler = NeighborSampler(small_graph, [3, 2], seed=0, backend=backend)
    for start in range(3):
        data = sampler.sample_nodes({"user": torch.arange(start, 500, 50)})
        assert_edges_exist(small_graph, data)
    assert sampler._scratch_is_clean()


def test_reproducible_per_seed(small_graph, backend):
    seeds = {"user": torch.arange(0, 500, 9)}

    def edges(seed):
        data = NeighborSampler(
            small_graph, [4, 2], seed=seed, backend=backend
        ).sample_nodes(seeds)
        return [data[t].n_id for t in data.node_types] + [
            data[et].edge_index for et in data.edge_types
        ]

    same = [torch.equal(a, b) for a, b in zip(edges(7), edges(7), strict=True)]
    assert all(same)
    other = [
        a.shape == b.shape and torch.equal(a, b)
        for a, b in zip(edges(7), edges(8), strict=True)
    ]
    assert not all(other)


def test_state_dict_resumes_stream(small_graph, backend):
    seeds = {"user": torch.arange(0, 500, 13)}
    a = NeighborSampler(small_graph, [3, 2], seed=11, backend=backend)
    a.sample_nodes(seeds)
    state = a.state_dict()
    expected = a.sample_nodes(seeds)
    b = NeighborSampler(small_graph, [3, 2], seed=0, backend=backend)
    b.load_state_dict(state)
    got = b.sample_nodes(seeds)
    for et in small_graph.edge_types:
        assert torch.equal(got[et].edge_index, expected[et].edge_index)
    with pytest.raises(ValueError, match="rng"):
        b.load_state_dict({})


def test_edge_weights_follow_sampled_edges(backend):
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 30, (400,), generator=g)
    dst = torch.randint(0, 40, (400,), generator=g)
    key = torch.unique(src * 40 + dst)
    src, dst = key // 40, key % 40
    weight = (src * 1000 + dst).float()  # unique and recoverable per edge
    graph = HeteroCSR.from_coo(
        {"user": 30, "note": 40}, {LIKE: (src, dst)}, weights={LIKE: weight}
    )
    data = NeighborSampler(graph, [3, 2], seed=0, backend=backend).sample_nodes(
        {"user": torch.arange(10)}
    )
    for et in graph.edge_types:
        s, d = global_edges(data, et)
        u, n = (s, d) if et == LIKE else (d, s)
        assert torch.equal(data[et].edge_weight, (u * 1000 + n).float())
    assert data[REV_LIKE].edge_weight.numel() > 0


def test_relation_without_twin_and_same_type_relation(backend):
    g = torch.Generator().manual_seed(0)
    follow = ("user", "follows", "user")
    edges = {
        follow: (
            torch.randint(0, 40, (300,), generator=g),
            torch.randint(0, 40, (300,), generator=g),
        ),
        LIKE: (
            torch.randint(0, 40, (300,), generator=g),
            torch.randint(0, 60, (300,), generator=g),
        ),
    }
    graph = HeteroCSR.from_coo({"user": 40, "note": 60}, edges, add_reverse=False)
    sampler = NeighborSampler(graph, [3, 2], seed=0, backend=backend)
    data = sampler.sample_nodes({"note": torch.tensor([1, 2, 3])})
    assert_edges_exist(graph, data)
    assert_fanouts(graph, data, {et: [3, 2] for et in graph.edge_types})
    assert data[follow].edge_index.size(1) > 0


def _involved(data, et):
    s, _, d = et
    return data[s].n_id, data[d].n_id


@pytest.mark.parametrize("neg_mode", ["uniform", "in_batch"])
def test_link_sampling(small_graph, neg_mode, backend):
    src, dst = small_graph.to_coo(LIKE)
    pick = torch.arange(0, src.numel(), 97)[:40]
    src, dst = src[pick], dst[pick]
    sampler = NeighborSampler(small_graph, [3, 2], seed=4, backend=backend)
    data = sampler.sample_links(LIKE, src, dst, num_neg=3, neg_mode=neg_mode)
    users, notes = _involved(data, LIKE)
    # Index tensors map back to the given positives.
    assert torch.equal(users[data.src_index], src)
    assert torch.equal(notes[data.dst_index], dst)
    assert data.src_neg_index.shape == data.dst_neg_index.shape == (40, 3)
    # Negatives are seeds too, hence among the first batch_size nodes.
    assert int(data.dst_neg_index.max()) < data["note"].batch_size
    assert int(data.src_neg_index.max()) < data["user"].batch_size
    # Unmasked negatives are never edges of the relation.
    neg_d = notes[data.dst_neg_index]
    neg_s = users[data.src_neg_index]
    src_rep = src.unsqueeze(1).expand_as(neg_d)
    dst_rep = dst.unsqueeze(1).expand_as(neg_s)
    is_edge_d = small_graph.has_edges(LIKE, src_rep.flatten(), neg_d.flatten())
    is_edge_s = small_graph.has_edges(LIKE, neg_s.flatten(), dst_rep.flatten())
    assert torch.equal(~is_edge_d.view(40, 3), data.dst_neg_mask)
    assert torch.equal(~is_edge_s.view(40, 3), data.src_neg_mask)
    if neg_mode == "uniform":
        assert bool(data.dst_neg_mask.all()) and bool(data.src_neg_mask.all())
    else:  # negatives are other positives' endpoints, never the own one
        pos_idx = torch.arange(40).unsqueeze(1)
        assert set(neg_d.flatten().tolist()) <= set(dst.tolist())
        assert not bool((data.dst_neg_index == data.dst_index[pos_idx]).all(1).any())
    assert_edges_exist(small_graph, data)


def test_uniform_negatives_resampled_on_dense_graph(backend):
    # 4 users x 5 notes, every user likes notes 0..3: most draws collide.
    src = torch.arange(4).repeat_interleave(4)
    dst = torch.arange(4).repeat(4)
    graph = HeteroCSR.from_coo({"user": 4, "note": 5}, {LIKE: (src, dst)})
    sampler = NeighborSampler(graph, [2], seed=0, backend=backend)
    data = sampler.sample_links(
        LIKE, src[:4], dst[:4], negatives=UniformNegatives(5, max_rounds=50)
    )
    notes = data["note"].n_id
    assert bool((notes[data.dst_neg_index] == 4).all())
    assert bool(data.dst_neg_mask.all())


def test_link_sampling_same_type(backend):
    g = torch.Generator().manual_seed(3)
    follow = ("user", "follows", "user")
    s = torch.randint(0, 60, (400,), generator=g)
    d = torch.randint(0, 60, (400,), generator=g)
    graph = HeteroCSR.from_coo({"user": 60}, {follow: (s, d)})
    sampler = NeighborSampler(graph, [2, 2], seed=0, backend=backend)
    data = sampler.sample_links(follow, s[:10], d[:10], num_neg=2)
    users = data["user"].n_id
    assert torch.equal(users[data.src_index], s[:10])
    assert torch.equal(users[data.dst_index], d[:10])
    neg = users[data.dst_neg_index]
    assert not bool(
        graph.has_edges(follow, s[:10].repeat_interleave(2), neg.flatten()).any()
    )


def test_removed_edges_are_never_sampled(small_graph, backend):
    src, dst = small_graph.to_coo(LIKE)
    drop = torch.arange(0, src.numel(), 2)
    removed = small_graph.remove_edges(LIKE, src[drop], dst[drop])
    dropped = edge_set(src[drop], dst[drop])
    sampler = NeighborSampler(removed, [-1, -1], seed=0, backend=backend)
    data = sampler.sample_nodes({"user": torch.arange(0, 500, 3)})
    s, d = global_edges(data, LIKE)
    assert edge_set(s, d).isdisjoint(dropped)
    rs, rd = global_edges(data, REV_LIKE)
    assert edge_set(rd, rs).isdisjoint(dropped)
    assert len(edge_set(s, d)) > 0 and len(edge_set(rs, rd)) > 0
    # With the full graph the same neighbourhoods do reach dropped edges.
    full = NeighborSampler(small_graph, [-1, -1], seed=0, backend=backend)
    data = full.sample_nodes({"user": torch.arange(0, 500, 3)})
    assert not edge_set(*global_edges(data, LIKE)).isdisjoint(dropped)


def test_remove_one_direction_falls_back_to_transpose(small_graph, backend):
    src, dst = small_graph.to_coo(LIKE)
    removed = small_graph.remove_edges(
        LIKE, src[:100], dst[:100], both_directions=False
    )
    data = NeighborSampler(removed, [-1, -1], backend=backend).sample_nodes(
        {"user": torch.arange(0, 500, 3)}
    )
    assert_edges_exist(removed, data)
    assert edge_set(*global_edges(data, LIKE)).isdisjoint(
        edge_set(src[:100], dst[:100])
    )


def test_empty_seeds_and_empty_relations(backend):
    graph = HeteroCSR.from_coo(
        {"user": 5, "note": 4, "tag": 0},
        {
            LIKE: ([0, 1], [2, 3]),
            ("user", "x", "note"): ([], []),
            ("note", "t", "tag"): ([], []),
        },
    )
    sampler = NeighborSampler(graph, [2, -1], backend=backend)
    data = sampler.sample_nodes({"user": torch.tensor([], dtype=torch.long)})
    assert data["user"].batch_size == 0 and data["note"].n_id.numel() == 0
    assert all(data[et].edge_index.shape == (2, 0) for et in graph.edge_types)
    data = sampler.sample_nodes({"user": torch.tensor([4, 0])})
    assert data["note"].n_id.tolist() == [2] and data["tag"].n_id.numel() == 0
    assert_edges_exist(graph, data)
    assert data[REV_LIKE].edge_index.tolist() == [[0], [1]]


def test_bad_arguments_raise(tiny_graph, backend):
    with pytest.raises(ValueError, match="graph"):
        NeighborSampler("graph", [2], backend=backend)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_neighbors"):
        NeighborSampler(tiny_graph, [2, -2], backend=backend)
    with pytest.raises(ValueError, match="num_neighbors"):
        NeighborSampler(tiny_graph, [], backend=backend)
    with pytest.raises(ValueError, match="unknown edge types"):
        NeighborSampler(tiny_graph, {("user", "x", "note"): [1]}, backend=backend)
    with pytest.raises(ValueError, match="same length"):
        NeighborSampler(tiny_graph, {LIKE: [1], REV_LIKE: [1, 2]}, backend=backend)
    sampler = NeighborSampler(tiny_graph, [2], backend=backend)
    with pytest.raises(ValueError, match="unknown node type 'item'"):
        sampler.sample_nodes({"item": torch.tensor([0])})
    with pytest.raises(ValueError, match=r"seeds\['user'\].*out of range"):
        sampler.sample_nodes({"user": torch.tensor([0, 50])})
    with pytest.raises(ValueError, match="duplicate"):
        sampler.sample_nodes({"user": torch.tensor([1, 2, 1])})
    assert sampler._scratch_is_clean()
    with pytest.raises(ValueError, match="non-empty"):
        sampler.sample_nodes({})
    with pytest.raises(ValueError, match="neg_mode"):
        sampler.sample_links(LIKE, [0], [0], neg_mode="hard")
    with pytest.raises(ValueError, match="num_neg"):
        sampler.sample_links(LIKE, [0, 1], [0, 1], num_neg=2, neg_mode="in_batch")
    with pytest.raises(ValueError, match="unknown edge_type"):
        sampler.sample_links(("user", "x", "note"), [0], [0])
    with pytest.raises(ValueError, match="lengths differ"):
        sampler.sample_links(LIKE, [0, 1], [0])
    assert reverse_edge_type(LIKE) == REV_LIKE


# ------------------------------------------------------------------ backends
def test_backend_selection(tiny_graph, monkeypatch):
    auto = NeighborSampler(tiny_graph, [2])
    assert auto.backend == ("numba" if HAVE_NUMBA else "torch")
    assert NeighborSampler(tiny_graph, [2], backend="torch").backend == "torch"
    with pytest.raises(ValueError, match="backend"):
        NeighborSampler(tiny_graph, [2], backend="cuda")

    def no_numba():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(sampler_module, "_import_kernels", no_numba)
    assert NeighborSampler(tiny_graph, [2]).backend == "torch"
    with pytest.raises(ImportError, match="numba"):
        NeighborSampler(tiny_graph, [2], backend="numba")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_uses_the_torch_backend(tiny_graph):
    cuda = HeteroCSR(
        dict(tiny_graph.num_nodes),
        {et: t.cuda() for et, t in tiny_graph.indptr.items()},
        {et: t.cuda() for et, t in tiny_graph.indices.items()},
    )
    assert NeighborSampler(cuda, [2]).backend == "torch"
    with pytest.raises(ValueError, match="CPU"):
        NeighborSampler(cuda, [2], backend="numba")


@needs_numba
@pytest.mark.parametrize("replace", [False, True])
def test_numba_and_torch_agree_on_fanout_statistics(small_graph, replace):
    """Same seeds, both backends: valid samples, the same per-node and per-hop
    edge counts at hop 0 (they only depend on degrees), exact fanouts."""
    fanouts = {et: [3, 2] for et in small_graph.edge_types}
    seeds = {"user": torch.arange(0, 500, 4)}
    out = {}
    for backend in ("numba", "torch"):
        sampler = NeighborSampler(
            small_graph, [3, 2], replace=replace, seed=5, backend=backend
        )
        data = sampler.sample_nodes(seeds)
        assert_edges_exist(small_graph, data)
        assert_fanouts(small_graph, data, fanouts, replace=replace)
        out[backend] = data
    a, b = out["numba"], out["torch"]
    for et in small_graph.edge_types:
        assert a[et].num_sampled_edges[0] == b[et].num_sampled_edges[0]
        if et[2] == "user":  # hop-0 targets: the seeds, same local ids
            hop0 = a[et].num_sampled_edges[0]
            count_a = torch.bincount(a[et].edge_index[1, :hop0], minlength=125)
            count_b = torch.bincount(b[et].edge_index[1, :hop0], minlength=125)
            assert torch.equal(count_a, count_b)
    assert a["user"].num_sampled_nodes[0] == b["user"].num_sampled_nodes[0]


@pytest.mark.parametrize(
    ("degree", "k", "replace"), [(12, 3, False), (30, 10, False), (12, 3, True)]
)
def test_neighbour_draws_are_uniform(backend, degree, k, replace):
    """A user with ``degree`` liked notes, ``k`` drawn per batch: each note's
    inclusion count over many batches is within 5 sigma of its expectation."""
    graph = HeteroCSR.from_coo(
        {"user": 1, "note": degree},
        {LIKE: (torch.zeros(degree, dtype=torch.long), torch.arange(degree))},
    )
    sampler = NeighborSampler(
        graph, {REV_LIKE: [k]}, replace=replace, seed=1, backend=backend
    )
    batches = 600
    counts = torch.zeros(degree)
    for _ in range(batches):
        data = sampler.sample_nodes({"user": torch.tensor([0])})
        src = data["note"].n_id[data[REV_LIKE].edge_index[0]]
        assert src.numel() == k
        if not replace:
            assert src.unique().numel() == k
        counts += torch.bincount(src, minlength=degree)
    draws = batches * k
    p = 1 / degree
    expected = draws * p
    sigma = (draws * p * (1 - p)) ** 0.5  # an upper bound without replacement
    assert float((counts - expected).abs().max()) < 5 * sigma


@pytest.mark.parametrize("replace", [False, True])
def test_fanouts_above_the_small_k_path(small_graph, backend, replace):
    # k > 8 takes the kernel's branching Floyd loop (rows with deg <= k: all).
    sampler = NeighborSampler(
        small_graph, [12, 9], replace=replace, seed=2, backend=backend
    )
    data = sampler.sample_nodes({"user": torch.arange(0, 500, 50)})
    assert_edges_exist(small_graph, data)
    per_et = {et: [12, 9] for et in small_graph.edge_types}
    assert_fanouts(small_graph, data, per_et, replace=replace)


@needs_numba
def test_numba_maps_are_renewed_without_changing_samples(small_graph):
    seeds = [{"user": torch.arange(s, 500, 7)} for s in range(3)]
    plain = NeighborSampler(small_graph, [3, 2], seed=9, backend="numba")
    aged = NeighborSampler(small_graph, [3, 2], seed=9, backend="numba")
    # Bases just below the renewal threshold, then beyond it after one batch.
    aged._map_base = dict.fromkeys(aged._map_base, sampler_module._MAP_RENEW - 50)
    for batch in seeds:
        a, b = plain.sample_nodes(batch), aged.sample_nodes(batch)
        for t in small_graph.node_types:
            assert torch.equal(a[t].n_id, b[t].n_id)
        for et in small_graph.edge_types:
            assert torch.equal(a[et].edge_index, b[et].edge_index)
        assert aged._scratch_is_clean()
    assert max(aged._map_base.values()) < sampler_module._MAP_RENEW


def test_pickled_sampler_continues_the_stream(small_graph, backend):
    sampler = NeighborSampler(small_graph, [3, 2], seed=4, backend=backend)
    sampler.sample_nodes({"user": torch.arange(0, 500, 11)})
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone.backend == sampler.backend
    seeds = {"user": torch.arange(3, 500, 13)}
    a, b = sampler.sample_nodes(seeds), clone.sample_nodes(seeds)
    for et in small_graph.edge_types:
        assert torch.equal(a[et].edge_index, b[et].edge_index)


def test_remove_targets_drops_every_edge_between_positive_pairs(backend):
    # users like and share notes: a positive pair is joined by up to four
    # sampled edges (like, rev_like, share, rev_share)
    g = torch.Generator().manual_seed(11)
    share = ("user", "share", "note")
    key = torch.unique(torch.randint(0, 12 * 15, (90,), generator=g))
    like_u, like_n = key // 15, key % 15
    graph = HeteroCSR.from_coo(
        {"user": 12, "note": 15},
        {LIKE: (like_u, like_n), share: (like_u[::2], like_n[::2])},
    )
    pos_u, pos_n = like_u[:6], like_n[:6]
    pos = set(zip(pos_u.tolist(), pos_n.tolist(), strict=True))
    kept = NeighborSampler(graph, [-1, -1], seed=0, backend=backend).sample_links(
        LIKE, pos_u, pos_n, num_neg=2
    )
    removed = NeighborSampler(graph, [-1, -1], seed=0, backend=backend).sample_links(
        LIKE, pos_u, pos_n, num_neg=2, remove_targets=True
    )
    dropped = 0
    for et in graph.edge_types:
        u_side = 0 if et[0] == "user" else 1
        pairs_kept = {
            p if u_side == 0 else p[::-1] for p in edge_set(*global_edges(kept, et))
        }
        pairs_removed = {
            p if u_side == 0 else p[::-1] for p in edge_set(*global_edges(removed, et))
        }
        assert not pairs_removed & pos, et  # no positive's own edge is left
        assert pairs_removed == pairs_kept - pos, et  # and nothing else is lost
        dropped += len(pairs_kept & pos)
    assert dropped >= 2 * len(pos)  # like + rev_like of every positive at least
    # the same negatives and indices: only the message-passing edges differ
    for name in ("src_index", "dst_index", "src_neg_index", "dst_neg_index"):
        assert torch.equal(getattr(kept, name), getattr(removed, name))
