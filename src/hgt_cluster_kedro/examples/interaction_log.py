"""A plain interaction log and an item-attribute table, generated: the worked
example of ``docs/own_data.md`` (environment ``conf/example_log``).

Writes three CSV files, the shape most recommender data arrives in:

* ``interactions.csv`` — ``user,item,timestamp,weight``: one row per distinct
  (user, item) pair, integer ids (users ``0 … n_users-1``, all active), Unix
  timestamps, a positive weight (e.g. a play count or a rating);
* ``items.csv`` — ``item,category,price``: one row per item;
* ``user_segments.csv`` — ``user,segment``: the planted segments, the optional
  ground truth (a real log usually has none; the guide shows both cases).

Users belong to one of ``n_segments`` planted segments; every category belongs
to one segment, and a user's interaction goes to an item of its segment's
categories with probability ``p_in_segment`` (else to a globally popular item),
so a method that recovers the segments is measurably better than popularity.
Seeded: the same arguments give the same files.

Run ``python -m hgt_cluster_kedro.examples.interaction_log [OUT_DIR]`` (default
``data/example_log/input``, where ``conf/example_log`` reads it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_OUT = "data/example_log/input"


def write_example_log(  # noqa: PLR0913
    out_dir: str | Path = DEFAULT_OUT,
    *,
    n_users: int = 2000,
    n_items: int = 1500,
    n_segments: int = 4,
    n_categories: int = 12,
    mean_interactions: float = 20.0,
    p_in_segment: float = 0.8,
    days: int = 180,
    seed: int = 0,
) -> dict[str, int]:
    """Write the example files into ``out_dir``; return their row counts."""
    if n_categories < n_segments:
        raise ValueError(
            f"n_categories={n_categories} must be >= n_segments={n_segments}"
        )
    if not 0.0 <= p_in_segment <= 1.0:
        raise ValueError(f"p_in_segment={p_in_segment} must be in [0, 1]")
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, n_segments, n_users)
    category = rng.integers(0, n_categories, n_items)
    popularity = rng.pareto(1.2, n_items) + 1.0
    users, items = [], []
    counts = np.clip(rng.geometric(1.0 / mean_interactions, n_users), 2, n_items // 4)
    own = {s: np.flatnonzero(category % n_segments == s) for s in range(n_segments)}
    for user, (s, n) in enumerate(zip(segment, counts, strict=True)):
        pool = own[s] if len(own[s]) else np.arange(n_items)
        n_own = rng.binomial(n, p_in_segment)
        picks = np.concatenate(
            [
                rng.choice(pool, n_own, p=popularity[pool] / popularity[pool].sum()),
                rng.choice(n_items, n - n_own, p=popularity / popularity.sum()),
            ]
        )
        picks = np.unique(picks)
        users.append(np.full(len(picks), user))
        items.append(picks)
    log = pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(items)})
    start = pd.Timestamp("2024-01-01").value // 10**9
    log["timestamp"] = start + rng.integers(0, days * 86400, len(log))
    log["weight"] = 1 + rng.poisson(1.0, len(log))
    log = log.sort_values(["timestamp", "user"], kind="stable").reset_index(drop=True)
    table = pd.DataFrame(
        {
            "item": np.arange(n_items),
            "category": category,
            "price": np.round(rng.lognormal(3.0, 0.8, n_items), 2),
        }
    )
    truth = pd.DataFrame({"user": np.arange(n_users), "segment": segment})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.to_csv(out / "interactions.csv", index=False)
    table.to_csv(out / "items.csv", index=False)
    truth.to_csv(out / "user_segments.csv", index=False)
    return {"interactions": len(log), "items": n_items, "users": n_users}


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m hgt_cluster_kedro.examples.interaction_log``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=DEFAULT_OUT)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = write_example_log(
        args.out_dir, n_users=args.users, n_items=args.items, seed=args.seed
    )
    print(f"Wrote {args.out_dir}: {rows}")  # noqa: T201 - command line


if __name__ == "__main__":
    main()
