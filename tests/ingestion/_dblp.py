"""A tiny DBLP look-alike in the formats of the real release (whitespace text
without header, ``labels.npy``, scipy sparse ``a_feat.npz``), with a planted
area per author so that clustering has something to find."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

N_AUTHORS, N_PAPERS, N_TERMS, N_VENUES, N_FEATURES, N_AREAS = 60, 150, 24, 4, 6, 2


def write_tiny_dblp(directory: Path, seed: int = 0) -> dict[str, int]:
    """Write pa.txt, pc.txt, pt.txt, labels.npy, a_feat.npz into ``directory``."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    area = np.arange(N_AUTHORS) % N_AREAS
    paper_area = np.arange(N_PAPERS) % N_AREAS
    pa = set()
    for p in range(N_PAPERS):
        pool = np.flatnonzero(area == paper_area[p])
        for a in rng.choice(pool, size=rng.integers(1, 3), replace=False):
            pa.add((p, int(a)))
    for a in range(N_AUTHORS):  # every author writes at least 6 papers
        pool = np.flatnonzero(paper_area == area[a])
        for p in rng.choice(pool, size=6, replace=False):
            pa.add((int(p), a))
    lines = [f"{p} {a}" for p, a in sorted(pa)]
    (directory / "pa.txt").write_text("\n".join(lines) + "\n")
    venues = paper_area * (N_VENUES // N_AREAS) + rng.integers(
        0, N_VENUES // N_AREAS, N_PAPERS
    )
    (directory / "pc.txt").write_text(
        "".join(f"{p}\t{v}\n" for p, v in enumerate(venues))
    )
    pt = []
    for p in range(N_PAPERS):
        half = N_TERMS // N_AREAS
        terms = paper_area[p] * half + rng.choice(half, size=3, replace=False)
        pt += [f"{p} {t}" for t in sorted(terms)]
    (directory / "pt.txt").write_text("\n".join(pt) + "\n")
    np.save(directory / "labels.npy", area.astype(np.int64))
    feats = (rng.random((N_AUTHORS, N_FEATURES)) < 0.3).astype(np.int64)
    sp.save_npz(directory / "a_feat.npz", sp.csr_matrix(feats))
    return {
        "author": N_AUTHORS,
        "paper": N_PAPERS,
        "term": N_TERMS,
        "venue": N_VENUES,
        "features": N_FEATURES,
        "writes": len(pa),
    }
