"""Session cutting, SR-GNN filtering, prefixes, baselines and metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hgt_cluster_kedro.models.srgnn import SRGNN
from hgt_cluster_kedro.pipelines.session.nodes import report
from hgt_cluster_kedro.session import (
    ItemKNN,
    ItemVocab,
    Popularity,
    SessionKNN,
    SessionPopularity,
    cut_sessions,
    drop_rare_items,
    next_item_metrics,
    prefixes,
    repeat_mask,
    subset,
    target_ranks,
)
from hgt_cluster_kedro.session.candidates import latest_sessions
from hgt_cluster_kedro.session.source import (
    CsvSource,
    clicks_from_csv,
    parse_gap,
    prepare,
)


def test_cut_by_gap_owner_and_max_length():
    owner = np.array([0, 0, 0, 0, 1, 1, 0])
    item = np.array([10, 11, 12, 13, 20, 21, 14])
    time = np.array([0, 5, 100, 104, 0, 1, 108])
    s = cut_sessions(owner, item, time, gap=10)
    # user 0: [10, 11] | [12, 13, 14] (gap 95 > 10); user 1: [20, 21]
    assert s.lengths.tolist() == [2, 3, 2]
    assert s.items.tolist() == [10, 11, 12, 13, 14, 20, 21]
    assert s.owner.tolist() == [0, 0, 1]
    assert s.end_time.tolist() == [5, 108, 1]
    s2 = cut_sessions(owner, item, time, gap=10, max_length=2)
    assert s2.lengths.tolist() == [2, 2, 1, 2]
    # a gap equal to the threshold does not cut
    assert cut_sessions([0, 0], [1, 2], [0, 10], gap=10).lengths.tolist() == [2]


@pytest.mark.parametrize("gap", [0, -5, "0s", "-1D"])
def test_gap_must_be_positive(gap):
    with pytest.raises(ValueError, match="session.gap must be > 0"):
        parse_gap(gap)
    with pytest.raises(ValueError, match="session.gap"):
        cut_sessions([0], [1], [0], gap=0)


def test_parse_gap_units():
    assert parse_gap("30min") == 30 * 60 * 1000
    assert parse_gap(2) == 2000


def test_rare_items_and_length_one_dropped_then_vocab():
    s = cut_sessions(
        [0, 0, 1, 1, 1, 2, 3, 3],
        [1, 2, 1, 2, 9, 5, 1, 2],
        [0, 1, 0, 1, 2, 0, 0, 1],
        gap=10,
    )
    f = drop_rare_items(s, 2)
    # item 9 (once) and 5 (once) gone; session of user 2 dropped (length 0)
    assert f.owner.tolist() == [0, 1, 3]
    assert f.items.tolist() == [1, 2, 1, 2, 1, 2]
    v = ItemVocab.from_sessions(f)
    assert v.raw.tolist() == [1, 2]
    assert v.encode(np.array([2, 1, 7])).tolist() == [2, 1, 0]


def test_prefixes_protocol_and_padding():
    s = cut_sessions([0, 0, 0, 1, 1], [3, 4, 5, 6, 7], [0, 1, 2, 0, 1], gap=10)
    p = prefixes(s)
    assert len(p) == 3  # (3)->4, (3,4)->5, (6)->7
    assert p.target.tolist() == [4, 5, 7]
    assert p.padded(np.arange(3)).tolist() == [[3, 0], [3, 4], [6, 0]]
    p1 = prefixes(s, max_length=1)  # keeps the last click
    assert p1.padded(np.arange(3)).tolist() == [[3], [4], [6]]


def test_target_ranks_ties_by_id_and_metrics():
    scores = np.array([[0.1, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    # row 0: target item 3 (column 2) ties with column 1 -> rank 2
    assert target_ranks(scores, np.array([3, 1])).tolist() == [2, 1]
    s = cut_sessions([0, 0, 0], [1, 2, 3], [0, 1, 2], gap=10)
    ex = prefixes(s)
    m = next_item_metrics(lambda x: np.tile([0.0, 1.0, 0.5], (len(x), 1)), ex, k=1)
    # targets 2 (rank 1) and 3 (rank 2): HR@1 = 0.5, MRR@1 = 0.5
    assert m == {"hitrate@1": 0.5, "mrr@1": 0.5, "n_prefixes": 2}


def test_baselines_hand_cases():
    s = cut_sessions([0, 0, 1, 1, 1], [1, 2, 1, 2, 3], [0, 1, 0, 1, 2], gap=10)
    q = np.array([[1, 0]])
    pop = Popularity(s, 3).scores(q)
    assert np.argmax(pop[0]) in (0, 1) and pop[0, 2] < pop[0, 0]
    knn = ItemKNN(s, 3).scores(q)[0]
    # item 1 co-occurs with 2 in both sessions (cos 1), with 3 in one (cos 1/sqrt2)
    assert knn[1] == pytest.approx(1.0, abs=1e-5)
    assert knn[2] == pytest.approx(2**-0.5, abs=1e-5)
    assert knn[0] < 1e-5
    sk = SessionKNN(s, 3, k=1).scores(np.array([[1, 2]]))[0]
    # most similar session to {1, 2} is session 0 ({1, 2}, cos 1): it alone votes
    assert sk[0] == pytest.approx(1.0, abs=1e-5) and sk[2] < 1e-5


def _sknn_dense(train, n_items, k, seqs):
    """SKNN as first written: dense prefix x session similarities, the k largest
    per row by partition, ties at the cut to the earlier session."""
    x = np.zeros((len(train), n_items))
    x[train.session_index(), train.items - 1] = 1.0
    q = np.zeros((len(seqs), n_items))
    r, c = np.nonzero(seqs > 0)
    q[r, seqs[r, c] - 1] = 1.0
    sim = (q @ x.T) / np.sqrt(np.maximum(q.sum(1), 1))[:, None]
    sim = sim / np.sqrt(np.maximum(x.sum(1), 1))[None, :]
    cut = np.partition(sim, -k, axis=1)[:, -k][:, None]
    above = sim > cut
    room = k - above.sum(1)[:, None]
    tied = (sim == cut) & (np.cumsum(sim == cut, 1) <= room)
    return np.where(above | tied, sim, 0.0) @ x


@pytest.mark.parametrize("k", [1, 3, 10, 500])
def test_sknn_equals_dense_reference_with_ties(k):
    rng = np.random.default_rng(k)
    n_items, n_clicks = 12, 600  # few items, short sessions: many tied similarities
    owner = np.sort(rng.integers(0, 60, n_clicks))
    t = np.arange(n_clicks) * 10 + rng.integers(0, 30, n_clicks) * 100
    train = cut_sessions(owner, rng.integers(1, n_items + 1, n_clicks), t, gap=50)
    seqs = rng.integers(0, n_items + 1, (40, 4))
    seqs[:, 0] = rng.integers(1, n_items + 1, 40)
    seqs = np.where(np.cumsum(seqs == 0, 1) > 0, 0, seqs)  # left-aligned padding
    got = SessionKNN(train, n_items, k=k).scores(seqs)
    want = _sknn_dense(train, n_items, min(k, len(train)), seqs)
    tie = SessionKNN(train, n_items, k=k).tie
    np.testing.assert_allclose(got - tie, want, rtol=1e-5, atol=1e-6)


def test_latest_sessions_per_owner():
    s = cut_sessions(
        [0, 0, 0, 0, 1, 1], [1, 2, 3, 4, 5, 6], [0, 1, 100, 101, 0, 1], gap=10
    )
    q = latest_sessions(s, 1)
    assert q.owner.tolist() == [0, 1]
    assert q.items.tolist() == [3, 4, 5, 6]
    q2 = latest_sessions(s, 2)
    assert q2.items.tolist() == [1, 2, 3, 4, 5, 6] and q2.lengths.tolist() == [4, 2]


def _csv(tmp_path, rows, header="session_id;user_id;item_id;timeframe;eventdate"):
    path = tmp_path / "log.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_source_split_by_date_and_errors(tmp_path):
    rows = []
    for sid, day in ((1, "2016-01-01"), (2, "2016-01-02"), (3, "2016-01-20")):
        for k, item in enumerate((7, 8, 9)):
            rows.append(f"{sid};NA;{item};{(3 - k) * 10};{day}")
    path = _csv(tmp_path, rows)
    clicks = clicks_from_csv(
        CsvSource(path=str(path), test_days=7, valid_fraction=0.0),
        gap=1e9,
        max_length=None,
    )
    by = clicks.groupby("session")["split"].first().tolist()
    assert by == ["train", "train", "test"]
    # ordered by timeframe: 9 (10), 8 (20), 7 (30)
    assert clicks[clicks.session == 0]["item"].tolist() == [9, 8, 7]
    bad = _csv(tmp_path, ["1;NA;7;1"], header="session_id;user_id;item_id;timeframe")
    with pytest.raises(ValueError, match=r"no column\(s\) \['eventdate'\]"):
        clicks_from_csv(CsvSource(path=str(bad)), gap=1, max_length=None)


def test_prepare_no_session_left_names_parameter():
    clicks = pd.DataFrame(
        {
            "session": [0, 1],
            "owner": [0, 1],
            "item": [1, 2],
            "time": [0, 0],
            "split": ["train", "train"],
        }
    )
    with pytest.raises(ValueError, match="no train session left.*min_item_count"):
        prepare(clicks, min_item_count=1)


def test_spop_hand_case():
    # train popularity: item 1 x3, item 2 x1, item 3 x2
    s = cut_sessions([0, 0, 1, 1, 1, 2], [1, 3, 1, 3, 1, 2], [0, 1, 0, 1, 2, 0], gap=9)
    sc = SessionPopularity(s, 3).scores(np.array([[2, 3, 2], [3, 0, 0]]))
    tie = 1e-6 * np.array([1.0, 1 / 3, 2 / 3])
    # prefix [2, 3, 2]: item 2 clicked twice, 3 once, 1 never
    np.testing.assert_allclose(sc[0], np.array([0.0, 2.0, 1.0]) + tie, rtol=1e-6)
    np.testing.assert_allclose(sc[1], np.array([0.0, 0.0, 1.0]) + tie, rtol=1e-6)


def test_repeat_mask_and_subset():
    s = cut_sessions([0, 0, 0, 0], [5, 6, 5, 7], [0, 1, 2, 3], gap=9)
    ex = prefixes(s)  # [5] -> 6, [5, 6] -> 5 (re-view), [5, 6, 5] -> 7
    assert repeat_mask(ex).tolist() == [False, True, False]
    new = subset(ex, ~repeat_mask(ex))
    assert new.target.tolist() == [6, 7]
    assert new.padded(np.arange(2)).tolist() == [[5, 0, 0], [5, 6, 5]]
    with pytest.raises(ValueError, match="keep has shape"):
        subset(ex, np.ones(2, bool))


def _report_clicks():
    # train: {10, 20} twice, {30, 40} twice; test: 10 -> 40 -> 10
    sessions = [[10, 20], [10, 20], [30, 40], [30, 40], [10, 40, 10]]
    rows = [
        (sid, sid, item, 0, "test" if sid == 4 else "train")
        for sid, items in enumerate(sessions)
        for item in items
    ]
    return pd.DataFrame(rows, columns=["session", "owner", "item", "time", "split"])


def test_report_baselines_from_train_only_and_new_item_split():
    """The SKNN pool is the train sessions only, and the report splits re-views.

    Test prefixes: [1] -> 4 (new item), [1, 4] -> 1 (re-view), model ids 1..4 for
    raw 10..40. SKNN for [1]: train sessions {1, 2} (cos 1/sqrt 2, twice) vote
    for 1 and 2; 3 and 4 only have the (equal) popularity tie-break, so 4 ranks
    4th by id: MRR 1/4. Were the test session {1, 4} itself in the pool, item 4
    would get 1/sqrt 2 and rank 3rd (MRR 1/3).
    """
    torch.manual_seed(0)
    model = SRGNN(4, 8, 1, True)
    state = {
        "tensors": model.state_dict(),
        "metadata": {
            "num_items": 4,
            "hidden": 8,
            "step": 1,
            "hybrid": True,
            "item_raw_ids": [10, 20, 30, 40],
        },
    }
    params = {
        "min_item_count": 1,
        "max_length": None,
        "report": {"k": 20, "sknn_k": 100, "batch_size": 8},
    }
    out = report(_report_clicks(), state, params)
    assert out["repeat_share"] == {"test": 0.5}
    new = out["new_items"]["test"]
    assert new["sknn"]["n_prefixes"] == 1
    assert new["sknn"]["mrr@20"] == pytest.approx(0.25)
    # S-POP: [1] -> 4 ranks 4th (item 1 first, then 2, 3, 4 by the tie);
    # [1, 4] -> 1: 1 and 4 clicked once each, 1 first by id
    assert out["test"]["spop"]["mrr@20"] == pytest.approx((0.25 + 1.0) / 2)
    assert new["spop"]["mrr@20"] == pytest.approx(0.25)
    assert set(out["test"]) == {"srgnn", "popularity", "spop", "item_knn", "sknn"}
