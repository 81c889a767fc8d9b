"""SR-GNN: training speed against reference implementations, and next-item quality
on the Diginetica sample and on fake data with planted transitions.

Speed (``--part speed``): training prefixes ("sessions") per second of one pass
over the same prefixes, hidden 100, batch 100, Adam, cross-entropy over all
items, on the same CPU threads, in interleaved rounds (ours, then each peer,
repeated; medians):

* ours: ``hgt_cluster_kedro.training.srgnn_trainer`` (batch graphs built with
  tensor operations, :func:`~hgt_cluster_kedro.models.srgnn.session_graph_batch`);
* ``authors``: a faithful transcription of the authors' PyTorch code
  (CRIPAC-DIG/SR-GNN ``pytorch_code/model.py`` + ``utils.py``: inputs padded to
  the longest session of the data, per-session NumPy loops building the
  adjacency in ``get_slice``, a per-session ``torch.stack`` gathering the click
  vectors), kept inside this file as the peer;
* ``recbole``: RecBole's ``SRGNN`` (``calculate_loss`` on ``Interaction``
  batches), when ``import recbole`` works (a throwaway environment; RecBole is
  not a dependency of the project).

Quality (``--part diginetica``, ``--part planted``):

* the Diginetica sample with the authors' protocol (``session_csv`` sources;
  ours selects the epoch on 10 % validation sessions, as ``conf/diginetica_sample``),
  next to popularity, S-POP, item-kNN, SKNN (and on the prefixes whose next item
  is not already in the prefix); the transcribed authors' code is run on the
  same split with their own selection (best test epoch of 30) for a same-run
  figure, next to their published run on this sample (P@20 6.06 %, MRR@20 1.58 %);
* fake data with planted transitions (generator block ``sessions``), through
  the graph split and the ``session`` sources, against the transition oracle
  (the planted successor of the last click first).

    python benchmarks/bench_srgnn.py                  # everything
    python benchmarks/bench_srgnn.py --part speed --rounds 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import Module, Parameter
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import record, write_results  # noqa: E402

from hgt_cluster_kedro.models.srgnn import SRGNN  # noqa: E402
from hgt_cluster_kedro.session import (  # noqa: E402
    ItemKNN,
    Popularity,
    SessionKNN,
    SessionPopularity,
    next_item_metrics,
    prefixes,
    repeat_mask,
    subset,
)
from hgt_cluster_kedro.session.source import (  # noqa: E402
    CsvSource,
    clicks_from_csv,
    clicks_from_relations,
    prepare,
)
from hgt_cluster_kedro.training.srgnn_trainer import (  # noqa: E402
    _epoch,
    scorer,
    train_srgnn,
)

BENCH = "srgnn"
DIGINETICA = Path("/work/shared/datasets/diginetica_sample/sample_train-item-views.csv")
AUTHORS_P20, AUTHORS_MRR20 = 0.0606, 0.0158
#: ours on the sample: conf/diginetica_sample's setting, chosen on validation MRR@20
#: (the authors' lr 0.001 decayed x0.1 every 3 epochs stops learning after ~30
#: steps on 436 sessions: 11 steps an epoch)
DIGINETICA_SRGNN = {"lr": 0.01, "lr_dc_step": 10}


# --- the authors' code, transcribed (pytorch_code/model.py, utils.py) --------


class AuthorsGNN(Module):
    def __init__(self, hidden_size, step=1):
        super().__init__()
        self.step = step
        self.hidden_size = hidden_size
        self.input_size = hidden_size * 2
        self.gate_size = 3 * hidden_size
        self.w_ih = Parameter(torch.Tensor(self.gate_size, self.input_size))
        self.w_hh = Parameter(torch.Tensor(self.gate_size, self.hidden_size))
        self.b_ih = Parameter(torch.Tensor(self.gate_size))
        self.b_hh = Parameter(torch.Tensor(self.gate_size))
        self.b_iah = Parameter(torch.Tensor(self.hidden_size))
        self.b_oah = Parameter(torch.Tensor(self.hidden_size))
        self.linear_edge_in = nn.Linear(self.hidden_size, self.hidden_size, bias=True)
        self.linear_edge_out = nn.Linear(self.hidden_size, self.hidden_size, bias=True)
        self.linear_edge_f = nn.Linear(self.hidden_size, self.hidden_size, bias=True)

    def GNNCell(self, A, hidden):  # noqa: N802
        n = A.shape[1]
        input_in = torch.matmul(A[:, :, :n], self.linear_edge_in(hidden)) + self.b_iah
        input_out = (
            torch.matmul(A[:, :, n : 2 * n], self.linear_edge_out(hidden)) + self.b_oah
        )
        inputs = torch.cat([input_in, input_out], 2)
        gi = F.linear(inputs, self.w_ih, self.b_ih)
        gh = F.linear(hidden, self.w_hh, self.b_hh)
        i_r, i_i, i_n = gi.chunk(3, 2)
        h_r, h_i, h_n = gh.chunk(3, 2)
        resetgate = torch.sigmoid(i_r + h_r)
        inputgate = torch.sigmoid(i_i + h_i)
        newgate = torch.tanh(i_n + resetgate * h_n)
        return newgate + inputgate * (hidden - newgate)

    def forward(self, A, hidden):
        for _ in range(self.step):
            hidden = self.GNNCell(A, hidden)
        return hidden


class AuthorsSessionGraph(Module):
    def __init__(self, n_node, hidden_size=100, step=1, lr=0.001, l2=1e-5):
        super().__init__()
        self.hidden_size = hidden_size
        self.n_node = n_node
        self.embedding = nn.Embedding(self.n_node, self.hidden_size)
        self.gnn = AuthorsGNN(self.hidden_size, step=step)
        self.linear_one = nn.Linear(self.hidden_size, self.hidden_size, bias=True)
        self.linear_two = nn.Linear(self.hidden_size, self.hidden_size, bias=True)
        self.linear_three = nn.Linear(self.hidden_size, 1, bias=False)
        self.linear_transform = nn.Linear(self.hidden_size * 2, self.hidden_size)
        self.loss_function = nn.CrossEntropyLoss()
        self.reset_parameters()
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=l2)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=3, gamma=0.1
        )

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            weight.data.uniform_(-stdv, stdv)

    def compute_scores(self, hidden, mask):
        ht = hidden[torch.arange(mask.shape[0]).long(), torch.sum(mask, 1) - 1]
        q1 = self.linear_one(ht).view(ht.shape[0], 1, ht.shape[1])
        q2 = self.linear_two(hidden)
        alpha = self.linear_three(torch.sigmoid(q1 + q2))
        a = torch.sum(alpha * hidden * mask.view(mask.shape[0], -1, 1).float(), 1)
        a = self.linear_transform(torch.cat([a, ht], 1))
        b = self.embedding.weight[1:]
        return torch.matmul(a, b.transpose(1, 0))

    def forward(self, inputs, A):
        return self.gnn(A, self.embedding(inputs))


class AuthorsData:
    """``utils.Data``: inputs padded to the longest session of the data."""

    def __init__(self, seqs, targets, shuffle=False):
        len_max = max(len(s) for s in seqs)
        self.inputs = np.asarray([s + [0] * (len_max - len(s)) for s in seqs])
        self.mask = np.asarray([[1] * len(s) + [0] * (len_max - len(s)) for s in seqs])
        self.targets = np.asarray(targets)
        self.length = len(seqs)
        self.shuffle = shuffle

    def generate_batch(self, batch_size, rng):
        if self.shuffle:
            idx = rng.permutation(self.length)
            self.inputs, self.mask = self.inputs[idx], self.mask[idx]
            self.targets = self.targets[idx]
        n_batch = int(self.length / batch_size)
        if self.length % batch_size != 0:
            n_batch += 1
        slices = np.split(np.arange(n_batch * batch_size), n_batch)
        slices[-1] = slices[-1][: (self.length - batch_size * (n_batch - 1))]
        return slices

    def get_slice(self, i):
        inputs, mask, targets = self.inputs[i], self.mask[i], self.targets[i]
        items, n_node, A, alias_inputs = [], [], [], []
        for u_input in inputs:
            n_node.append(len(np.unique(u_input)))
        max_n_node = np.max(n_node)
        for u_input in inputs:
            node = np.unique(u_input)
            items.append(node.tolist() + (max_n_node - len(node)) * [0])
            u_A = np.zeros((max_n_node, max_n_node))
            for k in np.arange(len(u_input) - 1):
                if u_input[k + 1] == 0:
                    break
                u = np.where(node == u_input[k])[0][0]
                v = np.where(node == u_input[k + 1])[0][0]
                u_A[u][v] = 1
            u_sum_in = np.sum(u_A, 0)
            u_sum_in[np.where(u_sum_in == 0)] = 1
            u_A_in = np.divide(u_A, u_sum_in)
            u_sum_out = np.sum(u_A, 1)
            u_sum_out[np.where(u_sum_out == 0)] = 1
            u_A_out = np.divide(u_A.transpose(), u_sum_out)
            u_A = np.concatenate([u_A_in, u_A_out]).transpose()
            A.append(u_A)
            alias_inputs.append([np.where(node == k)[0][0] for k in u_input])
        return alias_inputs, A, items, mask, targets


def authors_forward(model, i, data):
    alias_inputs, A, items, mask, targets = data.get_slice(i)
    alias_inputs = torch.Tensor(np.asarray(alias_inputs)).long()
    items = torch.Tensor(np.asarray(items)).long()
    A = torch.Tensor(np.asarray(A)).float()
    mask = torch.Tensor(mask).long()
    hidden = model(items, A)

    def get(k):
        return hidden[k][alias_inputs[k]]

    seq_hidden = torch.stack([get(k) for k in torch.arange(len(alias_inputs)).long()])
    return targets, model.compute_scores(seq_hidden, mask)


def authors_epoch(model, data, batch_size, rng):
    model.train()
    for i in data.generate_batch(batch_size, rng):
        model.optimizer.zero_grad()
        targets, scores = authors_forward(model, i, data)
        loss = model.loss_function(scores, torch.Tensor(targets).long() - 1)
        loss.backward()
        model.optimizer.step()


def authors_test(model, data, k=20):
    model.eval()
    hit, mrr = [], []
    with torch.no_grad():
        for i in data.generate_batch(100, None):
            targets, scores = authors_forward(model, i, data)
            sub = scores.topk(k)[1].numpy()
            for score, target in zip(sub, targets, strict=True):
                hit.append(np.isin(target - 1, score))
                where = np.where(score == target - 1)[0]
                mrr.append(0 if len(where) == 0 else 1 / (where[0] + 1))
    return float(np.mean(hit)), float(np.mean(mrr))


def _as_lists(examples):
    pad = examples.padded(np.arange(len(examples)))
    seqs = [row[row > 0].tolist() for row in pad]
    return seqs, examples.target.tolist()


# --- data ---------------------------------------------------------------------


def diginetica(valid_fraction: float):
    clicks = clicks_from_csv(
        CsvSource(path=str(DIGINETICA), test_days=7, valid_fraction=valid_fraction),
        gap="3650D",
        max_length=None,
    )
    return prepare(clicks, min_item_count=5, count_scope="all")


def planted(n_users: int, seed: int):
    from hgt_cluster_kedro.generation import GeneratorConfig, generate_local
    from hgt_cluster_kedro.generation.planted import planted_successors
    from hgt_cluster_kedro.graph import GraphConfig, index_tables, split_interactions

    cfg = GeneratorConfig(
        seed=seed,
        n_parts=4,
        n_users=n_users,
        n_notes=n_users,
        n_communities=8,
        relations={
            "follow_note": {"n_edges": 20 * n_users, "p_in_community": 0.35},
            "comment_note": {"n_edges": 2 * n_users, "p_in_community": 0.55},
            "share_note": {"n_edges": n_users, "p_in_community": 0.75},
        },
        sessions={"relation": "follow_note", "mean_length": 6, "p_follow": 0.8},
    )
    data = generate_local(cfg)
    root = Path(__file__).resolve().parents[1]
    import yaml

    graph_cfg = GraphConfig.model_validate(
        yaml.safe_load((root / "conf/base/parameters_graph.yml").read_text())["graph"]
    )
    tables = index_tables(
        data.nodes, data.edges, graph_cfg.graph_schema, graph_cfg.validation
    )
    interactions = split_interactions(tables, graph_cfg.split)
    schema = graph_cfg.graph_schema
    user_ids = tables.ids[schema.user_type]
    item_ids = tables.ids[schema.item_type]
    clicks = clicks_from_relations(
        data.edges,
        schema,
        user_ids,
        item_ids,
        interactions,
        relations=["follow_note"],
        gap="1h",
        max_length=50,
    )
    prepared = prepare(clicks, min_item_count=5)
    succ = planted_successors(cfg)  # by note id = contiguous id (0..n-1)
    assert (item_ids.to_numpy() == np.arange(len(item_ids))).all()
    return prepared, succ


def oracle_scorer(prepared, succ):
    """The planted successor of the last click first, then popularity."""
    vocab = prepared.vocab
    pop = Popularity(prepared.train, len(vocab)).pop * 1e-6
    nxt = vocab.encode(succ[vocab.raw])  # model id of each item's successor (0: gone)

    def score(seqs):
        last = seqs[np.arange(len(seqs)), (seqs > 0).sum(1) - 1]
        out = np.tile(pop, (len(seqs), 1))
        s = nxt[last - 1]
        ok = s > 0
        out[np.flatnonzero(ok), s[ok] - 1] += 1.0
        return out

    return score


def baselines(prepared, examples, k=20, sknn_k=100):
    n = len(prepared.vocab)
    return {
        "popularity": next_item_metrics(
            Popularity(prepared.train, n).scores, examples, k=k
        ),
        "spop": next_item_metrics(
            SessionPopularity(prepared.train, n).scores, examples, k=k
        ),
        "item_knn": next_item_metrics(ItemKNN(prepared.train, n).scores, examples, k=k),
        "sknn": next_item_metrics(
            SessionKNN(prepared.train, n, k=sknn_k).scores, examples, k=k
        ),
    }


# --- parts --------------------------------------------------------------------


def part_speed(args, records):
    prepared, _ = planted(args.planted_users, seed=1)
    ex = prefixes(prepared.train, 50)
    idx = np.random.default_rng(0).permutation(len(ex))[: args.speed_prefixes]
    sub = type(ex)(ex.items, ex.start[idx], ex.length[idx], ex.target[idx])
    n_items = len(prepared.vocab)
    seqs, targets = _as_lists(sub)
    print(
        f"speed: {len(sub)} prefixes, {n_items} items, {torch.get_num_threads()} threads"
    )

    def ours():
        model = SRGNN(n_items, 100, 1)
        model.reset_parameters(torch.Generator().manual_seed(0))
        opt = torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=1e-5)
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        _epoch(
            model,
            train=sub,
            optimizer=opt,
            gen=gen,
            batch_size=100,
            device=torch.device("cpu"),
        )
        return time.perf_counter() - start

    def authors():
        torch.manual_seed(0)
        model = AuthorsSessionGraph(n_items + 1)
        data = AuthorsData(seqs, targets, shuffle=True)
        start = time.perf_counter()
        authors_epoch(model, data, 100, np.random.default_rng(0))
        return time.perf_counter() - start

    peers = {"authors": authors}
    recbole = _recbole_peer(sub, n_items)
    if recbole is not None:
        peers["recbole"] = recbole
    times = {name: [] for name in ["ours", *peers]}
    for r in range(args.rounds):
        times["ours"].append(ours())
        for name, fn in peers.items():
            times[name].append(fn())
        print(
            f"round {r + 1}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: len(sub) / v for k, v in med.items()}
    for name in peers:
        records.append(
            record(
                BENCH,
                f"train_sessions_per_s_vs_{name}",
                rate["ours"],
                "session prefixes/s",
                peer=name
                if name != "authors"
                else "authors' SR-GNN code (transcribed)",
                peer_value=rate[name],
                rounds=args.rounds,
                prefixes=len(sub),
                items=n_items,
                threads=torch.get_num_threads(),
                seconds_median={"ours": med["ours"], name: med[name]},
                seconds_all={"ours": times["ours"], name: times[name]},
            )
        )
    if recbole is None:
        records.append(
            record(BENCH, "recbole_available", 0, "bool", note=_RECBOLE_NOTE[0])
        )


_RECBOLE_NOTE = ["not tried"]


def _recbole_peer(sub, n_items):
    try:
        from recbole.data.interaction import Interaction
        from recbole.model.sequential_recommender.srgnn import SRGNN as RecBoleSRGNN
    except Exception as exc:  # noqa: BLE001
        _RECBOLE_NOTE[0] = f"recbole not importable: {exc!r}"
        return None

    class _Dataset:
        def num(self, field):
            return n_items + 1

    config = {
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "LIST_SUFFIX": "_list",
        "ITEM_LIST_LENGTH_FIELD": "item_length",
        "MAX_ITEM_LIST_LENGTH": 50,
        "NEG_PREFIX": "neg_",
        "device": torch.device("cpu"),
        "embedding_size": 100,
        "step": 1,
        "loss_type": "CE",
    }

    class _Config(dict):
        def __getitem__(self, key):
            return dict.get(self, key)

    pad = sub.padded(np.arange(len(sub)))
    full = np.zeros((len(sub), 50), np.int64)
    full[:, : pad.shape[1]] = pad

    def run():
        torch.manual_seed(0)
        model = RecBoleSRGNN(_Config(config), _Dataset())
        opt = torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=1e-5)
        order = np.random.default_rng(0).permutation(len(sub))
        start = time.perf_counter()
        model.train()
        for lo in range(0, len(order), 100):
            i = order[lo : lo + 100]
            batch = Interaction(
                {
                    "item_id_list": torch.as_tensor(full[i]),
                    "item_length": torch.as_tensor(sub.length[i]),
                    "item_id": torch.as_tensor(sub.target[i]),
                }
            )
            opt.zero_grad()
            loss = model.calculate_loss(batch)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    return run


def part_diginetica(args, records):
    ours_data = diginetica(valid_fraction=0.1)
    train_ex = prefixes(ours_data.train)
    valid_ex = prefixes(ours_data.valid)
    test_ex = prefixes(ours_data.test)
    model, hist = train_srgnn(
        train_ex,
        valid_ex,
        len(ours_data.vocab),
        epochs=30,
        patience=10,
        seed=0,
        **DIGINETICA_SRGNN,
    )
    ours = next_item_metrics(scorer(model), test_ex, k=20)
    print("diginetica ours (valid-selected):", ours, "best epoch", hist["best_epoch"])
    base = baselines(ours_data, test_ex)
    print("diginetica baselines:", base)
    # re-views: prefixes whose next item is already in the prefix
    repeat = repeat_mask(test_ex)
    new_ex = subset(test_ex, ~repeat)
    new_items = {
        "srgnn": next_item_metrics(scorer(model), new_ex, k=20),
        **baselines(ours_data, new_ex),
    }
    print(f"diginetica re-view share {repeat.mean():.3f}; new items:", new_items)
    # the authors' code on the authors' split (all train sessions, test-selected)
    full = diginetica(valid_fraction=0.0)
    seqs, targets = _as_lists(prefixes(full.train))
    tseqs, ttargets = _as_lists(prefixes(full.test))
    torch.manual_seed(0)
    peer = AuthorsSessionGraph(len(full.vocab) + 1)
    rng = np.random.default_rng(0)
    train_data = AuthorsData(seqs, targets, shuffle=True)
    test_data = AuthorsData(tseqs, ttargets)
    best = (0.0, 0.0)
    per_epoch = []
    for _ in range(30):
        peer.scheduler.step()
        authors_epoch(peer, train_data, 100, rng)
        hit, mrr = authors_test(peer, test_data)
        per_epoch.append([hit, mrr])
        best = (max(best[0], hit), max(best[1], mrr))
    print("diginetica authors' code (test-selected, best of 30):", best)
    common = {
        "n_test_prefixes": len(test_ex),
        "n_train_sessions": len(ours_data.train),
        "n_valid_sessions": len(ours_data.valid),
        "n_items": len(ours_data.vocab),
        "best_epoch": hist["best_epoch"],
        "valid_mrr_by_epoch": hist["valid_mrr"],
        "selection": "ours: epoch of best validation MRR@20 (10 % of train sessions); "
        "peers: best test value of 30 epochs (the authors' protocol)",
        "srgnn_params": {"epochs": 30, "patience": 10, **DIGINETICA_SRGNN},
        "baselines": base,
        "test_repeat_share": float(repeat.mean()),
        "new_items": new_items,
        "authors_code_same_run_best": {"p@20": best[0], "mrr@20": best[1]},
        "authors_code_same_run_by_epoch": per_epoch,
    }
    for metric, value, ref in (
        ("hitrate@20", ours["hitrate@20"], AUTHORS_P20),
        ("mrr@20", ours["mrr@20"], AUTHORS_MRR20),
    ):
        records.append(
            record(
                BENCH,
                f"diginetica_sample_{metric}",
                value,
                "fraction",
                peer="authors' SR-GNN run on this sample (issue #16)",
                peer_value=ref,
                **common,
            )
        )


def part_planted(args, records):
    prepared, succ = planted(args.planted_users, seed=0)
    train_ex = prefixes(prepared.train, 50)
    valid_ex = prefixes(prepared.valid, 50)
    test_ex = prefixes(prepared.test, 50)
    print(
        f"planted: {len(prepared.train)} train sessions, {len(train_ex)} prefixes, "
        f"{len(prepared.vocab)} items, {len(test_ex)} test prefixes"
    )
    model, hist = train_srgnn(
        train_ex,
        valid_ex,
        len(prepared.vocab),
        epochs=args.planted_epochs,
        patience=3,
        seed=0,
    )
    ours = next_item_metrics(scorer(model), test_ex, k=20)
    oracle = next_item_metrics(oracle_scorer(prepared, succ), test_ex, k=20)
    base = baselines(prepared, test_ex)
    print("planted ours:", ours, "oracle:", oracle, "baselines:", base)
    for metric in ("hitrate@20", "mrr@20"):
        records.append(
            record(
                BENCH,
                f"planted_{metric}",
                ours[metric],
                "fraction",
                peer="transition oracle",
                peer_value=oracle[metric],
                n_users=args.planted_users,
                n_test_prefixes=len(test_ex),
                n_items=len(prepared.vocab),
                best_epoch=hist["best_epoch"],
                epochs=len(hist["epoch"]),
                train_seconds=float(sum(hist["seconds"])),
                baselines=base,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=["all", "speed", "diginetica", "planted"], default="all"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-prefixes", type=int, default=3000)
    parser.add_argument("--planted-users", type=int, default=3000)
    parser.add_argument("--planted-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records: list[dict] = []
    path = Path(__file__).resolve().parent / "results" / f"{BENCH}.json"
    if args.part != "all" and path.exists():  # keep the other parts' records
        import json

        prefix = {
            "speed": "train_",
            "diginetica": "diginetica_",
            "planted": "planted_",
        }[args.part]
        records = [
            r
            for r in json.loads(path.read_text())
            if not r["metric"].startswith(prefix)
            and r["metric"] != "recbole_available"
            or (args.part != "speed" and r["metric"] == "recbole_available")
        ]
    for name, fn in (
        ("speed", part_speed),
        ("diginetica", part_diginetica),
        ("planted", part_planted),
    ):
        if args.part in ("all", name):
            fn(args, records)
    print("wrote", write_results(BENCH, records))


if __name__ == "__main__":
    main()
