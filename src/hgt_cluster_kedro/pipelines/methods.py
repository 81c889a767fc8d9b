"""The methods compared by the project: which embeddings feed which clusterer.

``clustering`` (KMeans), ``som`` (post-hoc SOM) and ``evaluation`` build one
namespaced copy of their nodes per method listed here, so adding a method is one
line (plus its ``<prefix>_user_embeddings`` / ``<prefix>_training`` datasets).
Methods whose trainer writes its own clusters (``clusterer="trained"``, e.g. the
joint HGT + SOM) only get the evaluation copy.

The environment variable ``HGT_METHODS`` (comma-separated method names) limits
the methods these pipelines are built for, e.g. to compare without training
HGT::

    HGT_METHODS=twhin_kmeans,count_profile_kmeans kedro run \
        --pipelines data_generation,graph,twhin,count_profile,clustering,evaluation

``benchmarks/bench_quality.py`` uses it (``--methods``, ``--skip-pipelines``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kedro.pipeline import Pipeline


@dataclass(frozen=True)
class Method:
    """One compared method.

    Attributes:
        embeddings: prefix of its ``<prefix>_user_embeddings`` and
            ``<prefix>_training`` datasets.
        clusterer: ``"kmeans"`` (pipeline ``clustering``), ``"som"`` (pipeline
            ``som``) or ``"trained"`` (``<name>.user_clusters`` written by the
            method's own training pipeline).
        pipeline: the pipeline that trains the embeddings (default ``None``:
            the one named like ``embeddings``).
    """

    embeddings: str
    clusterer: str
    pipeline: str | None = None

    @property
    def training_pipeline(self) -> str:
        """The pipeline that writes ``<embeddings>_user_embeddings``."""
        return self.pipeline or self.embeddings


#: method name (the namespace, and the record in ``comparison``) -> Method.
METHODS: dict[str, Method] = {
    "twhin_kmeans": Method(embeddings="twhin", clusterer="kmeans"),
    "hgt_kmeans": Method(embeddings="hgt", clusterer="kmeans"),
    "twhin_som": Method(embeddings="twhin", clusterer="som"),
    "hgt_som": Method(embeddings="hgt", clusterer="som"),
    "count_profile_kmeans": Method(embeddings="count_profile", clusterer="kmeans"),
    "hgt_som_joint": Method(
        embeddings="hgt_som_joint", clusterer="trained", pipeline="hgt"
    ),
    # SimClusters: InterestedIn rows as embeddings, top community as cluster
    "simclusters": Method(embeddings="simclusters", clusterer="trained"),
}

#: environment variable naming the methods to build pipelines for (unset = all)
METHODS_ENV = "HGT_METHODS"


def selected_methods() -> dict[str, Method]:
    """The methods named in ``$HGT_METHODS`` (all of :data:`METHODS` when unset
    or empty), in :data:`METHODS` order.

    Raises:
        ValueError: a name that is not a method.
    """
    raw = os.environ.get(METHODS_ENV, "").strip()
    if not raw:
        return dict(METHODS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS and n not in CANDIDATE_METHODS]
    if unknown:
        raise ValueError(
            f"{METHODS_ENV}={raw!r}: unknown methods {unknown}; known: {list(METHODS)}"
        )
    return {n: m for n, m in METHODS.items() if n in names}


#: methods that recommend directly (no user embeddings, no clusters): method name
#: -> prefix of its ``<prefix>_candidates`` (per-user top-K: ``user``, ``item``,
#: ``rank``) and ``<prefix>_training``; ``evaluation`` scores the lists with the
#: same Recall / NDCG@K as u2u2i.
CANDIDATE_METHODS: dict[str, str] = {
    "srgnn": "srgnn",
}


def selected_candidates() -> dict[str, str]:
    """The candidate-list methods named in ``$HGT_METHODS`` (all of
    :data:`CANDIDATE_METHODS` when unset or empty)."""
    raw = os.environ.get(METHODS_ENV, "").strip()
    if not raw:
        return dict(CANDIDATE_METHODS)
    selected_methods()  # unknown names raise
    names = {n.strip() for n in raw.split(",")}
    return {n: p for n, p in CANDIDATE_METHODS.items() if n in names}


def methods_using(clusterer: str) -> dict[str, str]:
    """``{method name: embeddings prefix}`` of the selected methods using
    ``clusterer``."""
    return {
        n: m.embeddings
        for n, m in selected_methods().items()
        if m.clusterer == clusterer
    }


def per_method(template: Pipeline, clusterer: str, params: str) -> Pipeline:
    """One copy of ``template`` per method using ``clusterer``, namespaced by the
    method, reading ``<prefix>_user_embeddings`` and the shared ``params``
    (e.g. ``"params:som"``)."""
    return sum(
        (
            Pipeline(
                template,
                namespace=method,
                inputs={"user_embeddings": f"{prefix}_user_embeddings"},
                parameters={params: params},
            )
            for method, prefix in methods_using(clusterer).items()
        ),
        Pipeline([]),
    )
