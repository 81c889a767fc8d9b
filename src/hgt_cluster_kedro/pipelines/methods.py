"""The methods compared by the project: which embeddings feed which clusterer.

``clustering`` (KMeans), ``som`` (post-hoc SOM) and ``evaluation`` build one
namespaced copy of their nodes per method listed here, so adding a method is one
line (plus its ``<prefix>_user_embeddings`` / ``<prefix>_training`` datasets).
Methods whose trainer writes its own clusters (``clusterer="trained"``, e.g. the
joint HGT + SOM) only get the evaluation copy.
"""

from __future__ import annotations

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
    """

    embeddings: str
    clusterer: str


#: method name (the namespace, and the record in ``comparison``) -> Method.
METHODS: dict[str, Method] = {
    "twhin_kmeans": Method(embeddings="twhin", clusterer="kmeans"),
    "hgt_kmeans": Method(embeddings="hgt", clusterer="kmeans"),
    "twhin_som": Method(embeddings="twhin", clusterer="som"),
    "hgt_som": Method(embeddings="hgt", clusterer="som"),
    "count_profile_kmeans": Method(embeddings="count_profile", clusterer="kmeans"),
    "hgt_som_joint": Method(embeddings="hgt_som_joint", clusterer="trained"),
}


#: methods that recommend directly (no user embeddings, no clusters): method name
#: -> prefix of its ``<prefix>_candidates`` (per-user top-K: ``user``, ``item``,
#: ``rank``) and ``<prefix>_training``; ``evaluation`` scores the lists with the
#: same Recall / NDCG@K as u2u2i.
CANDIDATE_METHODS: dict[str, str] = {
    "srgnn": "srgnn",
}


def methods_using(clusterer: str) -> dict[str, str]:
    """``{method name: embeddings prefix}`` of the methods using ``clusterer``."""
    return {n: m.embeddings for n, m in METHODS.items() if m.clusterer == clusterer}


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
