"""SimClusters (Satuluri et al., KDD 2020): community-based sparse representations
of users, producers and items, Kedro-free.

One module per step: :mod:`.similarity` (producer–producer cosine graph),
:mod:`.knownfor` (Metropolis–Hastings communities, Leiden peer),
:mod:`.interested_in` (``U = A · V``, local or dask), :mod:`.embeddings`
(producer / item embeddings and the cluster-index u2i retrieval);
:mod:`.matrices` reads the follow matrix (relations or metapaths) off the train
graph.
"""

from .config import SimClustersConfig
from .embeddings import item_embeddings, producer_embeddings, u2i_recommend
from .interested_in import interested_in, top_community
from .knownfor import KnownFor, knownfor, leiden, modularity
from .matrices import (
    engagement_matrix,
    follow_matrix,
    metapath_matrix,
    relation_matrix,
)
from .similarity import producer_similarity, top_n_per_row

__all__ = [
    "KnownFor",
    "SimClustersConfig",
    "engagement_matrix",
    "follow_matrix",
    "interested_in",
    "item_embeddings",
    "knownfor",
    "leiden",
    "metapath_matrix",
    "modularity",
    "producer_embeddings",
    "producer_similarity",
    "relation_matrix",
    "top_community",
    "top_n_per_row",
    "u2i_recommend",
]
